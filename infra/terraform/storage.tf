# Storage for the Functions host (AzureWebJobsStorage), the deployment package and the configuration
# tables. Shared keys are off: every client (the app, Terraform, `python -m shared apply`) uses Entra ID.

locals {
  # Every table the gateway uses: `<prefix><kind>` (shared/config/model.py KINDS, shared/config/store.py
  # EXTRA_TABLES), plus the ones later features write to.
  table_kinds = [
    "identityproviders",
    "externalidentities",
    "teams",
    "accounts",
    "workspaces",
    "models",
    "mcpservers",
    "agents",
    "ratelimits",
    "budgets",
    "prices",
    "bindings",
    "meta",
    "usage",
    "audit",
    "health",
    "remotecalls",
    "oauthtokens",
    "objects",
  ]
  deployment_container_name = "deployment-package"
}

resource "azurerm_storage_account" "main" {
  name                              = "st${local.resource_token}"
  location                          = azurerm_resource_group.main.location
  resource_group_name               = azurerm_resource_group.main.name
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = "LRS"
  access_tier                       = "Hot"
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  allow_nested_items_to_be_public   = false
  cross_tenant_replication_enabled  = false
  local_user_enabled                = false
  sftp_enabled                      = false
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  public_network_access_enabled     = true
  infrastructure_encryption_enabled = true
  tags                              = local.tags

  network_rules {
    default_action = "Allow"
    bypass         = ["AzureServices"]
  }

  sas_policy {
    expiration_period = "00.01:00:00"
    expiration_action = "Log"
  }

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  lifecycle {
    precondition {
      condition     = can(regex("^[a-z0-9]{3,24}$", "st${local.resource_token}"))
      error_message = "The storage account name must be 3 to 24 lowercase letters and digits."
    }
  }
}

resource "azurerm_storage_container" "deployment" {
  name                  = local.deployment_container_name
  storage_account_id    = azurerm_storage_account.main.id
  container_access_type = "private"
}

resource "azapi_resource" "table" {
  for_each  = toset(local.table_kinds)
  type      = "Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01"
  name      = "${var.table_prefix}${each.value}"
  parent_id = "${azurerm_storage_account.main.id}/tableServices/default"
}

resource "azurerm_monitor_diagnostic_setting" "storage_blob" {
  name                       = "to-log-analytics"
  target_resource_id         = "${azurerm_storage_account.main.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category_group = "allLogs"
  }
}

resource "azurerm_monitor_diagnostic_setting" "storage_queue" {
  name                       = "to-log-analytics"
  target_resource_id         = "${azurerm_storage_account.main.id}/queueServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category_group = "allLogs"
  }
}

resource "azurerm_monitor_diagnostic_setting" "storage_table" {
  name                       = "to-log-analytics"
  target_resource_id         = "${azurerm_storage_account.main.id}/tableServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category_group = "allLogs"
  }
}
