# Every role assignment, least privilege, each scoped to the one resource it is for.

locals {
  # Built-in role definition ids (the same on every tenant).
  roles = {
    storage_blob_data_owner        = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
    storage_queue_data_contributor = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
    storage_table_data_contributor = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
    monitoring_metrics_publisher   = "3913510d-42f4-4e42-8a64-420c390055eb"
    cognitive_services_openai_user = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
    azure_ai_user                  = "53ca6127-db72-4b80-b1b0-d745d6d5456d"
    key_vault_secrets_user         = "4633458b-17de-408a-b874-0445c86b69e6"
  }
  # The optional AI Foundry resource: each of these principals gets both roles on it.
  foundry_principals = var.create_ai_foundry ? merge(
    { identity = azurerm_user_assigned_identity.gateway.principal_id },
    var.create_entra_app ? { entra_app = azuread_service_principal.gateway[0].object_id } : {},
  ) : {}
  role_definition_prefix = "/subscriptions/${data.azurerm_client_config.current.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/"
}

# Host storage (AzureWebJobsStorage: blobs, the timer's lease, queues), the deployment package and the
# configuration tables.
resource "azurerm_role_assignment" "identity_blob_owner" {
  scope              = azurerm_storage_account.main.id
  role_definition_id = "${local.role_definition_prefix}${local.roles.storage_blob_data_owner}"
  principal_id       = azurerm_user_assigned_identity.gateway.principal_id
  principal_type     = "ServicePrincipal"
}

resource "azurerm_role_assignment" "identity_queue_contributor" {
  scope              = azurerm_storage_account.main.id
  role_definition_id = "${local.role_definition_prefix}${local.roles.storage_queue_data_contributor}"
  principal_id       = azurerm_user_assigned_identity.gateway.principal_id
  principal_type     = "ServicePrincipal"
}

resource "azurerm_role_assignment" "identity_table_contributor" {
  scope              = azurerm_storage_account.main.id
  role_definition_id = "${local.role_definition_prefix}${local.roles.storage_table_data_contributor}"
  principal_id       = azurerm_user_assigned_identity.gateway.principal_id
  principal_type     = "ServicePrincipal"
}

# Telemetry with Entra authentication (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
resource "azurerm_role_assignment" "identity_metrics_publisher" {
  scope              = azurerm_application_insights.main.id
  role_definition_id = "${local.role_definition_prefix}${local.roles.monitoring_metrics_publisher}"
  principal_id       = azurerm_user_assigned_identity.gateway.principal_id
  principal_type     = "ServicePrincipal"
}

# Azure OpenAI with the managed identity itself (account auth type `managed-identity`).
resource "azurerm_role_assignment" "identity_openai_user" {
  scope              = azurerm_cognitive_account.openai.id
  role_definition_id = "${local.role_definition_prefix}${local.roles.cognitive_services_openai_user}"
  principal_id       = azurerm_user_assigned_identity.gateway.principal_id
  principal_type     = "ServicePrincipal"
}

# Azure OpenAI through the optional app registration (account auth type `workload-identity`).
resource "azurerm_role_assignment" "entra_app_openai_user" {
  count              = var.create_entra_app ? 1 : 0
  scope              = azurerm_cognitive_account.openai.id
  role_definition_id = "${local.role_definition_prefix}${local.roles.cognitive_services_openai_user}"
  principal_id       = azuread_service_principal.gateway[0].object_id
  principal_type     = "ServicePrincipal"
}

# The app's Key Vault references (GATEWAY_SEALING_KEY): read secrets of this one vault, nothing else.
# The deployer gets no role here: the secret is written through Resource Manager (keyvault.tf).
resource "azurerm_role_assignment" "identity_key_vault_secrets_user" {
  scope              = azurerm_key_vault.main.id
  role_definition_id = "${local.role_definition_prefix}${local.roles.key_vault_secrets_user}"
  principal_id       = azurerm_user_assigned_identity.gateway.principal_id
  principal_type     = "ServicePrincipal"
}

# The deployer loads the configuration into the tables (`python -m shared apply -f`).
resource "azurerm_role_assignment" "deployer_table_contributor" {
  count              = var.principal_id != "" ? 1 : 0
  scope              = azurerm_storage_account.main.id
  role_definition_id = "${local.role_definition_prefix}${local.roles.storage_table_data_contributor}"
  principal_id       = var.principal_id
  principal_type     = var.principal_type
}

# The optional AI Foundry resource (foundry.tf), for the managed identity and the optional app
# registration: Azure AI User for Foundry's own APIs, Cognitive Services OpenAI User for the
# OpenAI-compatible ones.
resource "azurerm_role_assignment" "foundry_ai_user" {
  for_each           = local.foundry_principals
  scope              = azurerm_cognitive_account.foundry[0].id
  role_definition_id = "${local.role_definition_prefix}${local.roles.azure_ai_user}"
  principal_id       = each.value
  principal_type     = "ServicePrincipal"
}

resource "azurerm_role_assignment" "foundry_openai_user" {
  for_each           = local.foundry_principals
  scope              = azurerm_cognitive_account.foundry[0].id
  role_definition_id = "${local.role_definition_prefix}${local.roles.cognitive_services_openai_user}"
  principal_id       = each.value
  principal_type     = "ServicePrincipal"
}
