// The gateway: a Flex Consumption function app (Python 3.13) that runs as the user-assigned identity
// for everything, including its deployment package. HTTPS only, TLS 1.2, no FTP, no basic publishing
// credentials, logs to Log Analytics.

param location string
param tags object
param name string
param planName string
param identityName string
param storageAccountName string
param deploymentContainerName string
param appInsightsName string
param logAnalyticsId string
param tablePrefix string
param gatewayAdmins string
@description('Versionless URI of the secret holding GATEWAY_SEALING_KEY; empty when there is none.')
param sealingKeyUri string
param httpPerInstanceConcurrency int
param alwaysReadyInstanceCount int
param maximumInstanceCount int
param instanceMemoryMB int

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    // Key Vault references resolve with the user-assigned identity (the default would be a system-assigned
    // identity, which the app does not have).
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      // Every app setting. tests/infra/test_app_settings.py compares this list with shared/settings.py
      // (every setting with in_azure=True, no other gateway setting, and only the host settings it
      // allows) and with the Terraform stack. On Flex Consumption the runtime is set in
      // functionAppConfig: FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION must not be set.
      appSettings: [
        // The Functions host, identity-based: no AzureWebJobsStorage connection string, no key.
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identity.properties.clientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
        }
        {
          name: 'PYTHON_ENABLE_INIT_INDEXING'
          value: '1'
        }
        // The gateway itself (shared/settings.py).
        {
          name: 'GATEWAY_TABLES_ENDPOINT'
          value: storage.properties.primaryEndpoints.table
        }
        {
          name: 'AZURE_CLIENT_ID'
          value: identity.properties.clientId
        }
        {
          name: 'GATEWAY_TABLE_PREFIX'
          value: tablePrefix
        }
        {
          name: 'GATEWAY_ADMINS'
          value: gatewayAdmins
        }
        {
          name: 'GATEWAY_CONFIG_REFRESH_SECONDS'
          value: '10'
        }
        {
          name: 'GATEWAY_JWT_LEEWAY_SECONDS'
          value: '60'
        }
        {
          name: 'GATEWAY_JWKS_TTL_SECONDS'
          value: '600'
        }
        {
          name: 'GATEWAY_JWKS_MAX_STALE_SECONDS'
          value: '86400'
        }
        {
          name: 'GATEWAY_JWKS_COOLDOWN_SECONDS'
          value: '30'
        }
        {
          name: 'GATEWAY_MAX_BODY_BYTES'
          value: '26214400'
        }
        {
          name: 'GATEWAY_UPSTREAM_TIMEOUT_SECONDS'
          value: '120'
        }
        {
          name: 'GATEWAY_LOG_LEVEL'
          value: 'INFO'
        }
        {
          // A reference, never the key: the platform resolves it with keyVaultReferenceIdentity.
          name: 'GATEWAY_SEALING_KEY'
          value: empty(sealingKeyUri) ? '' : '@Microsoft.KeyVault(SecretUri=${sealingKeyUri})'
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        alwaysReady: alwaysReadyInstanceCount > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyInstanceCount
          }
        ] : []
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      // Python 3.13 with runtime versioning: requirements.txt pins azure-functions-runtime, and Azure
      // runs that exact runtime library for the app.
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: site
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

output name string = site.name
output url string = 'https://${site.properties.defaultHostName}'
