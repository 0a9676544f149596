# The gateway on Azure, keyless: a Flex Consumption function app that reaches its storage, its
# configuration tables, Application Insights and Azure OpenAI with one user-assigned managed identity.
# No connection string with a key, no API key, no client secret anywhere.
#
# The same resources, roles, app settings and outputs as infra/bicep (tests/infra checks both).

data "azurerm_client_config" "current" {}

locals {
  resource_token = substr(sha1("${data.azurerm_client_config.current.subscription_id}/${var.environment_name}/${var.location}"), 0, 13)
  tags = {
    "azd-env-name" = var.environment_name
    application    = "ai-gateway"
  }
  function_app_name = "func-${local.resource_token}"
}

resource "azurerm_resource_group" "main" {
  name     = "rg-${var.environment_name}"
  location = var.location
  tags     = local.tags
}
