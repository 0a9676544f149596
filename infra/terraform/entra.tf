# Optional (`create_entra_app`): an Entra app registration whose only credential is the managed identity
# (Workload Identity Federation with a managed identity as the federated credential): the
# gateway gets a token for api://AzureADTokenExchange with the identity and presents it as the app's
# client assertion. No secret, no certificate.
#
# Needs, for whoever applies, the right to create applications (Application Developer role, or
# Application.ReadWrite.OwnedBy / Application.ReadWrite.All).

data "azuread_client_config" "current" {
  count = var.create_entra_app ? 1 : 0
}

resource "azuread_application" "gateway" {
  count            = var.create_entra_app ? 1 : 0
  display_name     = var.entra_app_display_name != "" ? var.entra_app_display_name : "ai-gateway-${var.environment_name}"
  sign_in_audience = "AzureADMyOrg"
  owners           = [data.azuread_client_config.current[0].object_id]
}

resource "azuread_application_federated_identity_credential" "managed_identity" {
  count          = var.create_entra_app ? 1 : 0
  application_id = azuread_application.gateway[0].id
  display_name   = "managed-identity"
  description    = "The user-assigned managed identity of the gateway"
  audiences      = ["api://AzureADTokenExchange"]
  issuer         = "https://login.microsoftonline.com/${data.azurerm_client_config.current.tenant_id}/v2.0"
  subject        = azurerm_user_assigned_identity.gateway.principal_id
}

resource "azuread_service_principal" "gateway" {
  count     = var.create_entra_app ? 1 : 0
  client_id = azuread_application.gateway[0].client_id
  owners    = [data.azuread_client_config.current[0].object_id]
}
