# Azure OpenAI with one model deployment. Local (API key) authentication is off: only Entra tokens are
# accepted, which the gateway gets with the managed identity or through Workload Identity Federation.
# The custom subdomain is what Entra authentication needs.

locals {
  openai_name            = "oai-${local.resource_token}"
  openai_deployment_name = var.openai_deployment_name != "" ? var.openai_deployment_name : var.openai_model_name
}

resource "azurerm_cognitive_account" "openai" {
  name                          = local.openai_name
  location                      = var.openai_location != "" ? var.openai_location : azurerm_resource_group.main.location
  resource_group_name           = azurerm_resource_group.main.name
  kind                          = "OpenAI"
  sku_name                      = "S0"
  custom_subdomain_name         = local.openai_name
  local_auth_enabled            = false
  public_network_access_enabled = true
  # Data loss prevention: the account may call out to nothing (the gateway only uses inference).
  outbound_network_access_restricted = true
  tags                               = local.tags

  identity {
    type = "SystemAssigned"
  }

  network_acls {
    default_action = "Allow"
  }
}

resource "azurerm_cognitive_deployment" "model" {
  name                 = local.openai_deployment_name
  cognitive_account_id = azurerm_cognitive_account.openai.id

  model {
    format  = "OpenAI"
    name    = var.openai_model_name
    version = var.openai_model_version
  }

  sku {
    name     = var.openai_deployment_sku
    capacity = var.openai_deployment_capacity
  }
}

resource "azurerm_monitor_diagnostic_setting" "openai" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_cognitive_account.openai.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category_group = "allLogs"
  }
}
