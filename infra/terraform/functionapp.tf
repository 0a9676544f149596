# The gateway: a Flex Consumption function app (Python 3.13) that runs as the user-assigned identity for
# everything, including its deployment package and its Key Vault references. HTTPS only, TLS 1.2, no
# basic publishing credentials, logs to Log Analytics.

resource "azurerm_service_plan" "main" {
  name                = "plan-${local.resource_token}"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  os_type             = "Linux"
  sku_name            = "FC1"
  tags                = local.tags
}

resource "azurerm_function_app_flex_consumption" "gateway" {
  name                = local.function_app_name
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  service_plan_id     = azurerm_service_plan.main.id
  tags                = merge(local.tags, { "azd-service-name" = "api" })

  # Python 3.13 with runtime versioning: requirements.txt pins azure-functions-runtime, and Azure runs
  # that exact runtime library for the app.
  runtime_name           = "python"
  runtime_version        = "3.13"
  http_concurrency       = var.http_per_instance_concurrency
  maximum_instance_count = var.maximum_instance_count
  instance_memory_in_mb  = var.instance_memory_mb

  dynamic "always_ready" {
    for_each = var.always_ready_instance_count > 0 ? [var.always_ready_instance_count] : []
    content {
      name           = "http"
      instance_count = always_ready.value
    }
  }

  storage_container_type            = "blobContainer"
  storage_container_endpoint        = "${azurerm_storage_account.main.primary_blob_endpoint}${azurerm_storage_container.deployment.name}"
  storage_authentication_type       = "UserAssignedIdentity"
  storage_user_assigned_identity_id = azurerm_user_assigned_identity.gateway.id

  https_only                                     = true
  webdeploy_publish_basic_authentication_enabled = false
  client_certificate_enabled                     = false
  public_network_access_enabled                  = true

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.gateway.id]
  }

  site_config {
    minimum_tls_version                    = "1.2"
    scm_minimum_tls_version                = "1.2"
    http2_enabled                          = true
    remote_debugging_enabled               = false
    application_insights_connection_string = azurerm_application_insights.main.connection_string
  }

  # Every app setting (APPLICATIONINSIGHTS_CONNECTION_STRING comes from site_config above).
  # tests/infra/test_app_settings.py compares this map with shared/settings.py (every setting with
  # in_azure=True, no other gateway setting, and only the host settings it allows) and with the Bicep
  # stack. On Flex Consumption the runtime is set by runtime_name/runtime_version:
  # FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION must not be set.
  app_settings = {
    # The Functions host, identity-based: no connection string, no key.
    # azurerm 4.x's Flex resource has no argument for identity-based host storage: on every create and
    # update it writes AzureWebJobsStorage as a connection string with an empty AccountKey, on which
    # the host does not start, and on read it drops that setting from app_settings
    # (hashicorp/terraform-provider-azurerm#29149, #29693, #33211). Giving it "" here is the one value
    # that wins over the provider's (user settings are merged last), so the host uses the
    # AzureWebJobsStorage__* settings below. The price is that `terraform plan` lists this one setting
    # after every apply. Not set: the app would not start. lifecycle.ignore_changes on it: the next
    # update of the app would write the keyless string again, since the override would no longer be
    # sent. Both are checked in tests/infra/test_app_settings.py.
    AzureWebJobsStorage                       = ""
    AzureWebJobsStorage__accountName          = azurerm_storage_account.main.name
    AzureWebJobsStorage__credential           = "managedidentity"
    AzureWebJobsStorage__clientId             = azurerm_user_assigned_identity.gateway.client_id
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "ClientId=${azurerm_user_assigned_identity.gateway.client_id};Authorization=AAD"
    PYTHON_ENABLE_INIT_INDEXING               = "1"
    # The gateway itself (shared/settings.py).
    GATEWAY_TABLES_ENDPOINT          = azurerm_storage_account.main.primary_table_endpoint
    AZURE_CLIENT_ID                  = azurerm_user_assigned_identity.gateway.client_id
    GATEWAY_TABLE_PREFIX             = var.table_prefix
    GATEWAY_ADMINS                   = var.gateway_admins
    GATEWAY_CONFIG_REFRESH_SECONDS   = "10"
    GATEWAY_JWT_LEEWAY_SECONDS       = "60"
    GATEWAY_JWKS_TTL_SECONDS         = "600"
    GATEWAY_JWKS_MAX_STALE_SECONDS   = "86400"
    GATEWAY_JWKS_COOLDOWN_SECONDS    = "30"
    GATEWAY_MAX_BODY_BYTES           = "26214400"
    GATEWAY_UPSTREAM_TIMEOUT_SECONDS = "120"
    GATEWAY_LOG_LEVEL                = "INFO"
    # A reference, never the key: the platform resolves it with the identity that
    # azapi_resource_action.key_vault_reference_identity below names.
    GATEWAY_SEALING_KEY = "@Microsoft.KeyVault(SecretUri=${local.sealing_key_secret_uri})"
  }

  depends_on = [
    azurerm_role_assignment.identity_blob_owner,
    azurerm_role_assignment.identity_queue_contributor,
    azurerm_role_assignment.identity_table_contributor,
    azurerm_role_assignment.identity_metrics_publisher,
    azurerm_role_assignment.identity_key_vault_secrets_user,
  ]
}

# Basic (username and password) publishing is off for both endpoints, as in the Bicep stack. azurerm
# turns off the SCM one (webdeploy_publish_basic_authentication_enabled above) but has no argument for
# FTP on Flex Consumption. The policy always exists with the site, so azapi updates it rather than
# creating it.
resource "azapi_update_resource" "ftp_basic_auth" {
  type      = "Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01"
  name      = "ftp"
  parent_id = azurerm_function_app_flex_consumption.gateway.id
  locks     = [azurerm_function_app_flex_consumption.gateway.id]
  body = {
    properties = {
      allow = false
    }
  }
}

# Key Vault references resolve with the user-assigned identity, as in the Bicep stack: the default is a
# system-assigned identity, which the app does not have. azurerm's Flex Consumption resource has no
# argument for it (hashicorp/terraform-provider-azurerm#28928), so a PATCH of the site sets
# keyVaultReferenceIdentity alone. azurerm's own updates read the site and write it back, so they keep it.
resource "azapi_resource_action" "key_vault_reference_identity" {
  type        = "Microsoft.Web/sites@2024-04-01"
  resource_id = azurerm_function_app_flex_consumption.gateway.id
  method      = "PATCH"
  locks       = [azurerm_function_app_flex_consumption.gateway.id]
  body = {
    properties = {
      keyVaultReferenceIdentity = azurerm_user_assigned_identity.gateway.id
    }
  }
}

resource "azurerm_monitor_diagnostic_setting" "function_app" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_function_app_flex_consumption.gateway.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category_group = "allLogs"
  }
}
