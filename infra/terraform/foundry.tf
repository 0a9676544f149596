# Optional (`create_ai_foundry`): an AI Foundry resource, the AIServices kind of Cognitive Services
# account with project management, besides the Azure OpenAI account. Local (key) authentication is off
# and the custom subdomain is what Entra authentication needs, as for Azure OpenAI. The gateway's
# identity (and the optional app registration) may call it: Azure AI User for Foundry's own APIs,
# Cognitive Services OpenAI User for the OpenAI-compatible ones (roles.tf). Deploy models in the
# Foundry portal or with azurerm_cognitive_deployment.

locals {
  foundry_name = "aif-${local.resource_token}"
}

resource "azurerm_cognitive_account" "foundry" {
  count                              = var.create_ai_foundry ? 1 : 0
  name                               = local.foundry_name
  location                           = var.openai_location != "" ? var.openai_location : azurerm_resource_group.main.location
  resource_group_name                = azurerm_resource_group.main.name
  kind                               = "AIServices"
  sku_name                           = "S0"
  custom_subdomain_name              = local.foundry_name
  local_auth_enabled                 = false
  project_management_enabled         = true
  public_network_access_enabled      = true
  outbound_network_access_restricted = true
  tags                               = local.tags

  identity {
    type = "SystemAssigned"
  }

  network_acls {
    default_action = "Allow"
  }
}

resource "azurerm_monitor_diagnostic_setting" "foundry" {
  count                      = var.create_ai_foundry ? 1 : 0
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_cognitive_account.foundry[0].id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category_group = "allLogs"
  }
}
