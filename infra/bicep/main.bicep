// The gateway on Azure, keyless: a Flex Consumption function app that reaches its storage, its
// configuration tables, Application Insights, Azure OpenAI and its Key Vault with one user-assigned
// managed identity. No connection string with a key, no API key, no client secret anywhere; the one
// secret, the gateway's sealing key, lives in the Key Vault and reaches the app as a reference.
//
// Deployed by `azd up` (azure.yaml), or by hand:
//   az deployment sub create -l <region> -f infra/bicep/main.bicep -p environmentName=<name> location=<region>
// infra/terraform declares the same resources, roles, settings and outputs (tests/infra checks both).

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd: AZURE_ENV_NAME); seeds the name of every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource; Flex Consumption must be offered there.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Region of the Azure OpenAI account when the model is not offered in `location`. Empty: `location`.')
param openAiLocation string = ''

@description('Object id of the deployer (azd: AZURE_PRINCIPAL_ID). It gets Storage Table Data Contributor on the configuration tables so that `python -m shared apply -f` works. Empty: no assignment.')
param principalId string = ''

@description('Kind of principal `principalId` is.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('GATEWAY_ADMINS: comma-separated principals that are gateway admins (bootstrap).')
param gatewayAdmins string = ''

@minLength(1)
@maxLength(30)
@description('GATEWAY_TABLE_PREFIX: prefix of every configuration table (a letter, then letters or digits).')
param tablePrefix string = 'gw'

@minValue(1)
@maxValue(1000)
@description('HTTP requests one instance serves at once. Python on Flex defaults to 1, far too few for a streaming proxy.')
param httpPerInstanceConcurrency int = 16

@minValue(0)
@maxValue(100)
@description('Always-ready instances for the HTTP functions (no cold start for that many). 0: none, pay per use only.')
param alwaysReadyInstanceCount int = 0

@minValue(1)
@maxValue(1000)
@description('Most instances the app may scale out to.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Memory of one instance, in MB.')
param instanceMemoryMB int = 2048

@description('Model of the one Azure OpenAI deployment.')
param openAiModelName string = 'gpt-4o-mini'

@description('Version of that model.')
param openAiModelVersion string = '2024-07-18'

@description('Name of the deployment (what a gateway model targets). Empty: the model name.')
param openAiDeploymentName string = ''

@description('Deployment type (SKU) of the model deployment.')
param openAiDeploymentSku string = 'GlobalStandard'

@minValue(1)
@description('Capacity of the deployment, in thousands of tokens per minute.')
param openAiDeploymentCapacity int = 10

@description('Create an AI Foundry resource (Cognitive Services kind AIServices, project management on, keyless) besides the Azure OpenAI account; the gateway\'s identity gets Azure AI User and Cognitive Services OpenAI User on it. Off by default.')
param createAiFoundry bool = false

@description('Create an Entra app registration whose federated credential is the managed identity (Workload Identity Federation). Needs directory rights (Application Developer or Application.ReadWrite.OwnedBy): off by default.')
param createEntraApp bool = false

@description('Display name of that app registration. Empty: ai-gateway-<environment>.')
param entraAppDisplayName string = ''

@description('OIDC issuer URL of a Kubernetes cluster whose service account may act as the managed identity. Empty: no such federated credential.')
param kubernetesIssuer string = ''

@description('Namespace of that service account.')
param kubernetesNamespace string = ''

@description('Name of that service account.')
param kubernetesServiceAccount string = ''

@minValue(30)
@maxValue(730)
@description('Days Log Analytics keeps logs.')
param logRetentionDays int = 30

@secure()
@description('GATEWAY_SEALING_KEY, kept in the Key Vault (azd: GATEWAY_SEALING_KEY; `openssl rand -base64 32`). Empty: no secret, and each instance draws its own key (sessions break across instances, OAuth is unavailable).')
param sealingKey string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'ai-gateway'
}
var functionAppName = 'func-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    retentionInDays: logRetentionDays
  }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'id-${resourceToken}'
    kubernetesIssuer: kubernetesIssuer
    kubernetesNamespace: kubernetesNamespace
    kubernetesServiceAccount: kubernetesServiceAccount
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'st${resourceToken}'
    tablePrefix: tablePrefix
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    name: 'kv-${resourceToken}'
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    sealingKey: sealingKey
    createSealingKey: !empty(sealingKey)
  }
}

module openAi 'modules/openai.bicep' = {
  name: 'openai'
  scope: rg
  params: {
    location: empty(openAiLocation) ? location : openAiLocation
    tags: tags
    name: 'oai-${resourceToken}'
    deploymentName: empty(openAiDeploymentName) ? openAiModelName : openAiDeploymentName
    modelName: openAiModelName
    modelVersion: openAiModelVersion
    deploymentSku: openAiDeploymentSku
    deploymentCapacity: openAiDeploymentCapacity
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module entraApp 'modules/entra.bicep' = if (createEntraApp) {
  name: 'entra-app'
  scope: rg
  params: {
    displayName: empty(entraAppDisplayName) ? 'ai-gateway-${environmentName}' : entraAppDisplayName
    managedIdentityPrincipalId: identity.outputs.principalId
  }
}

module foundry 'modules/foundry.bicep' = if (createAiFoundry) {
  name: 'ai-foundry'
  scope: rg
  params: {
    location: empty(openAiLocation) ? location : openAiLocation
    tags: tags
    name: 'aif-${resourceToken}'
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    identityPrincipalId: identity.outputs.principalId
    entraServicePrincipalId: createEntraApp ? entraApp.outputs.servicePrincipalId : ''
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    openAiAccountName: openAi.outputs.name
    keyVaultName: keyVault.outputs.name
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
    entraServicePrincipalId: createEntraApp ? entraApp.outputs.servicePrincipalId : ''
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    location: location
    tags: tags
    name: functionAppName
    planName: 'plan-${resourceToken}'
    identityName: identity.outputs.name
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    tablePrefix: tablePrefix
    gatewayAdmins: gatewayAdmins
    sealingKeyUri: keyVault.outputs.sealingKeyUri
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    alwaysReadyInstanceCount: alwaysReadyInstanceCount
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
  dependsOn: [
    roles
  ]
}

// What infra/README.md's next steps use (azd stores each in the environment's .env).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output GATEWAY_URL string = functionApp.outputs.url
output GATEWAY_TABLES_ENDPOINT string = storage.outputs.tableEndpoint
output GATEWAY_TABLE_PREFIX string = tablePrefix
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_OPENAI_ENDPOINT string = openAi.outputs.endpoint
output AZURE_OPENAI_DEPLOYMENT string = openAi.outputs.deploymentName
output AZURE_AI_FOUNDRY_ENDPOINT string = createAiFoundry ? foundry.outputs.endpoint : ''
output ENTRA_APP_CLIENT_ID string = createEntraApp ? entraApp.outputs.clientId : ''
