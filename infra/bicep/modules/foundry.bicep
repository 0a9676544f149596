// Optional (main.bicep `createAiFoundry`): an AI Foundry resource, the AIServices kind of Cognitive
// Services account with project management, besides the Azure OpenAI account. Local (key)
// authentication is off and the custom subdomain is what Entra authentication needs, as for Azure
// OpenAI. The gateway's identity (and the optional app registration) may call it: Azure AI User for
// Foundry's own APIs, Cognitive Services OpenAI User for the OpenAI-compatible ones. Deploy models in
// the Foundry portal or with accounts/deployments.

param location string
param tags object
param name string
param logAnalyticsId string
param identityPrincipalId string
param entraServicePrincipalId string

// Built-in role definition ids (the same on every tenant).
var roles = {
  azureAiUser: '53ca6127-db72-4b80-b1b0-d745d6d5456d'
  cognitiveServicesOpenAiUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
}
var principals = empty(entraServicePrincipalId) ? [identityPrincipalId] : [identityPrincipalId, entraServicePrincipalId]

resource account 'Microsoft.CognitiveServices/accounts@2025-06-01' = {
  name: name
  location: location
  tags: tags
  kind: 'AIServices'
  sku: {
    name: 'S0'
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    allowProjectManagement: true
    publicNetworkAccess: 'Enabled'
    restrictOutboundNetworkAccess: true
    allowedFqdnList: []
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
}

resource aiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principal in principals: {
  name: guid(account.id, principal, roles.azureAiUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.azureAiUser)
    principalId: principal
    principalType: 'ServicePrincipal'
  }
}]

resource openAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principal in principals: {
  name: guid(account.id, principal, roles.cognitiveServicesOpenAiUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAiUser)
    principalId: principal
    principalType: 'ServicePrincipal'
  }
}]

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

output name string = account.name
output endpoint string = account.properties.endpoint
