# The one user-assigned managed identity the gateway uses for everything: host storage, deployment
# package, configuration tables, telemetry and Azure OpenAI. Optionally a Kubernetes service account may
# act as it (federated credential), for the same gateway running in a cluster.

resource "azurerm_user_assigned_identity" "gateway" {
  name                = "id-${local.resource_token}"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  tags                = local.tags
}

resource "azurerm_federated_identity_credential" "kubernetes" {
  count               = var.kubernetes_issuer != "" ? 1 : 0
  name                = "kubernetes-${var.kubernetes_namespace}-${var.kubernetes_service_account}"
  resource_group_name = azurerm_resource_group.main.name
  parent_id           = azurerm_user_assigned_identity.gateway.id
  issuer              = var.kubernetes_issuer
  subject             = "system:serviceaccount:${var.kubernetes_namespace}:${var.kubernetes_service_account}"
  audience            = ["api://AzureADTokenExchange"]
}
