# The one user-assigned managed identity the gateway uses for everything: host storage, deployment
# package, configuration tables, telemetry and Azure OpenAI. Optionally a Kubernetes service account may
# act as it (federated credential), for the same gateway running in a cluster.

locals {
  # A federated credential's name must match ^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$: every other character
  # becomes '-' and the result is cut to 120 characters. For Kubernetes names (lowercase letters,
  # digits, '-' and '.') this is the name infra/bicep/modules/identity.bicep derives.
  kubernetes_credential_name = substr(replace("kubernetes-${var.kubernetes_namespace}-${var.kubernetes_service_account}", "/[^a-zA-Z0-9_-]/", "-"), 0, 120)
}

resource "azurerm_user_assigned_identity" "gateway" {
  name                = "id-${local.resource_token}"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  tags                = local.tags
}

resource "azurerm_federated_identity_credential" "kubernetes" {
  count               = var.kubernetes_issuer != "" ? 1 : 0
  name                = local.kubernetes_credential_name
  resource_group_name = azurerm_resource_group.main.name
  parent_id           = azurerm_user_assigned_identity.gateway.id
  issuer              = var.kubernetes_issuer
  subject             = "system:serviceaccount:${var.kubernetes_namespace}:${var.kubernetes_service_account}"
  audience            = ["api://AzureADTokenExchange"]
}
