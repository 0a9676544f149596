# The deployment's one secret: GATEWAY_SEALING_KEY, the key that seals MCP session ids, OAuth state and
# stored OAuth tokens and derives the identity-assertion signing key. It must be the same on every
# instance, so it cannot be drawn per process; it is a secret, so it is no plain app setting either. The
# app setting is a Key Vault reference that the managed identity resolves (Key Vault Secrets User on this
# vault only, see roles.tf).
#
# Access is Entra RBAC only (no access policies). Soft delete with purge protection: a deleted vault or
# secret can be recovered for 7 days and purged by nobody; 7 is the shortest retention, so that the name
# of a destroyed environment is free again soon (the key itself is replaceable: users re-authorize).
# Public network access as for the other resources: the Flex app has no virtual network.

locals {
  key_vault_name         = "kv-${local.resource_token}"
  sealing_key_secret_uri = "${azurerm_key_vault.main.vault_uri}secrets/${azapi_resource.sealing_key.name}"
}

resource "azurerm_key_vault" "main" {
  name                          = local.key_vault_name
  location                      = azurerm_resource_group.main.location
  resource_group_name           = azurerm_resource_group.main.name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "standard"
  rbac_authorization_enabled    = true
  soft_delete_retention_days    = 7
  purge_protection_enabled      = true
  public_network_access_enabled = true
  tags                          = local.tags

  network_acls {
    default_action = "Allow"
    bypass         = "AzureServices"
  }
}

# 32 random bytes, drawn once and kept in the state (which therefore holds the key: keep the state
# private). `terraform apply -replace=random_bytes.sealing_key` draws a new one (see infra/README.md).
resource "random_bytes" "sealing_key" {
  length = 32
}

# Written through Resource Manager, like the tables: the one who applies needs no data-plane role on the
# vault. Resource Manager never returns a secret's value, which azapi ignores (ignore_missing_property).
resource "azapi_resource" "sealing_key" {
  type      = "Microsoft.KeyVault/vaults/secrets@2023-07-01"
  name      = "gateway-sealing-key"
  parent_id = azurerm_key_vault.main.id
  body = {
    properties = {
      value       = random_bytes.sealing_key.base64
      contentType = "base64"
    }
  }
}

resource "azurerm_monitor_diagnostic_setting" "key_vault" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_key_vault.main.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category_group = "allLogs"
  }
}
