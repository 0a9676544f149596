// Optional (main.bicep `createEntraApp`): an Entra app registration whose only credential is the
// managed identity (Workload Identity Federation with a managed identity as the federated credential):
// the gateway gets a token for api://AzureADTokenExchange with the identity and presents it
// as the app's client assertion. No secret, no certificate.
//
// Needs the Microsoft Graph Bicep extension (bicepconfig.json) and, for whoever deploys, the right to
// create applications (Application Developer role, or Application.ReadWrite.OwnedBy / All).

extension microsoftGraphV1

param displayName string
param managedIdentityPrincipalId string

var uniqueName = 'ai-gateway-${uniqueString(resourceGroup().id, displayName)}'

resource app 'Microsoft.Graph/applications@v1.0' = {
  displayName: displayName
  uniqueName: uniqueName
  signInAudience: 'AzureADMyOrg'

  resource managedIdentityCredential 'federatedIdentityCredentials@v1.0' = {
    name: '${app.uniqueName}/managed-identity'
    description: 'The user-assigned managed identity of the gateway'
    audiences: [
      'api://AzureADTokenExchange'
    ]
    issuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
    subject: managedIdentityPrincipalId
  }
}

resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: app.appId
}

output clientId string = app.appId
output servicePrincipalId string = servicePrincipal.id
