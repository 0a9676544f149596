// The one user-assigned managed identity the gateway uses for everything: host storage, deployment
// package, configuration tables, telemetry and Azure OpenAI. Optionally a Kubernetes service account may
// act as it (federated credential), for the same gateway running in a cluster.

param location string
param tags object
param name string
param kubernetesIssuer string
param kubernetesNamespace string
param kubernetesServiceAccount string

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

resource kubernetes 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = if (!empty(kubernetesIssuer)) {
  parent: identity
  name: 'kubernetes-${kubernetesNamespace}-${kubernetesServiceAccount}'
  properties: {
    issuer: kubernetesIssuer
    subject: 'system:serviceaccount:${kubernetesNamespace}:${kubernetesServiceAccount}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
