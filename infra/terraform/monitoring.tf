# Log Analytics and workspace-based Application Insights, both with local (key) authentication off:
# telemetry is accepted only with an Entra token (the managed identity holds Monitoring Metrics
# Publisher, see roles.tf).

resource "azurerm_log_analytics_workspace" "main" {
  name                         = "log-${local.resource_token}"
  location                     = azurerm_resource_group.main.location
  resource_group_name          = azurerm_resource_group.main.name
  sku                          = "PerGB2018"
  retention_in_days            = var.log_retention_days
  local_authentication_enabled = false
  tags                         = local.tags
}

resource "azurerm_application_insights" "main" {
  name                          = "appi-${local.resource_token}"
  location                      = azurerm_resource_group.main.location
  resource_group_name           = azurerm_resource_group.main.name
  application_type              = "web"
  workspace_id                  = azurerm_log_analytics_workspace.main.id
  local_authentication_disabled = true
  internet_ingestion_enabled    = true
  internet_query_enabled        = true
  tags                          = local.tags
}
