// The deployment's one secret: GATEWAY_SEALING_KEY, the key that seals MCP session ids, OAuth state and
// stored OAuth tokens and derives the identity-assertion signing key. It must be the same on every
// instance, so it cannot be drawn per process; it is a secret, so it is no plain app setting either. The
// app setting is a Key Vault reference that the managed identity resolves (Key Vault Secrets User on this
// vault only, see roles.bicep).
//
// Access is Entra RBAC only (no access policies). Soft delete with purge protection: a deleted vault or
// secret can be recovered for 7 days and purged by nobody; 7 is the shortest retention, so that the name
// of a torn-down environment is free again soon (the key itself is replaceable: users re-authorize).
// Public network access as for the other resources: the Flex app has no virtual network.

param location string
param tags object
param name string
param logAnalyticsId string

@secure()
@description('GATEWAY_SEALING_KEY: base64 of at least 32 random bytes.')
param sealingKey string

@description('Whether sealingKey holds a key. False: no secret, and the app setting stays empty (each instance draws its own key). A plain bool, so that no output reads the secure parameter.')
param createSealingKey bool

var sealingKeySecretName = 'gateway-sealing-key'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Written through Resource Manager (the deployer needs no data-plane role on the vault). Only when a key
// is given: a reference to a missing secret would hand the gateway the reference text as its key.
resource sealingKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (createSealingKey) {
  parent: vault
  name: sealingKeySecretName
  properties: {
    value: sealingKey
    contentType: 'base64'
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
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

output name string = vault.name
// Versionless: the app follows the secret's current version, so replacing the secret rotates the key.
output sealingKeyUri string = createSealingKey ? sealingKeySecret.properties.secretUri : ''
