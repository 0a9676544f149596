// The one user-assigned managed identity the gateway uses for everything: host storage, deployment
// package, configuration tables, telemetry and Azure OpenAI. Optionally a Kubernetes service account may
// act as it (federated credential), for the same gateway running in a cluster.

param location string
param tags object
param name string
param kubernetesIssuer string
param kubernetesNamespace string
param kubernetesServiceAccount string

// A federated credential's name must match ^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$. Kubernetes names hold
// lowercase letters, digits, '-' and '.', so '.' becomes '-' and the result is cut to 120 characters
// (infra/terraform/identity.tf derives the same name).
var kubernetesCredentialName = take(replace('kubernetes-${kubernetesNamespace}-${kubernetesServiceAccount}', '.', '-'), 120)

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

resource kubernetes 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = if (!empty(kubernetesIssuer)) {
  parent: identity
  name: kubernetesCredentialName
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
