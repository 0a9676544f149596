# What infra/README.md's next steps use (azd stores each in the environment's .env). The same names as
# the Bicep stack's outputs.

output "AZURE_LOCATION" {
  value = var.location
}

output "AZURE_TENANT_ID" {
  value = data.azurerm_client_config.current.tenant_id
}

output "AZURE_RESOURCE_GROUP" {
  value = azurerm_resource_group.main.name
}

output "AZURE_FUNCTION_APP_NAME" {
  value = azurerm_function_app_flex_consumption.gateway.name
}

output "GATEWAY_URL" {
  value = "https://${azurerm_function_app_flex_consumption.gateway.default_hostname}"
}

output "GATEWAY_TABLES_ENDPOINT" {
  value = azurerm_storage_account.main.primary_table_endpoint
}

output "GATEWAY_TABLE_PREFIX" {
  value = var.table_prefix
}

output "AZURE_STORAGE_ACCOUNT_NAME" {
  value = azurerm_storage_account.main.name
}

output "AZURE_MANAGED_IDENTITY_CLIENT_ID" {
  value = azurerm_user_assigned_identity.gateway.client_id
}

output "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID" {
  value = azurerm_user_assigned_identity.gateway.principal_id
}

output "AZURE_KEY_VAULT_NAME" {
  value = azurerm_key_vault.main.name
}

output "AZURE_OPENAI_ENDPOINT" {
  value = azurerm_cognitive_account.openai.endpoint
}

output "AZURE_OPENAI_DEPLOYMENT" {
  value = azurerm_cognitive_deployment.model.name
}

output "AZURE_AI_FOUNDRY_ENDPOINT" {
  value = var.create_ai_foundry ? azurerm_cognitive_account.foundry[0].endpoint : ""
}

output "ENTRA_APP_CLIENT_ID" {
  value = var.create_entra_app ? azuread_application.gateway[0].client_id : ""
}
