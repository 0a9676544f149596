terraform {
  required_version = ">= 1.9.0"

  required_providers {
    # One major version only: argument names differ between azurerm 4.x and 5.x
    # (azurerm_federated_identity_credential, azurerm_storage_table, ...). 4.58 is the first release
    # whose Flex Consumption resource takes http_concurrency and a maximum_instance_count up to 1000.
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.58"
    }
    azuread = {
      source  = "hashicorp/azuread"
      version = "~> 3.4"
    }
    # Only for the configuration tables: azurerm 4.x creates tables through the data plane, which
    # needs a shared key or a data role for the deployer before the tables exist. azapi creates them
    # through Resource Manager like the Bicep stack does.
    azapi = {
      source  = "Azure/azapi"
      version = "~> 2.2"
    }
    # GATEWAY_SEALING_KEY (random_bytes, keyvault.tf).
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }
}

provider "azurerm" {
  subscription_id = var.subscription_id != "" ? var.subscription_id : null
  # Shared keys are off on the storage account: the provider must use Entra ID for data-plane calls.
  storage_use_azuread = true

  features {
    cognitive_account {
      purge_soft_delete_on_destroy = false
    }
    # Purge protection forbids purging the vault; a new apply of the same environment within the
    # retention days takes the soft-deleted vault back instead of failing on its name.
    key_vault {
      purge_soft_delete_on_destroy    = false
      recover_soft_deleted_key_vaults = true
    }
  }
}

provider "azuread" {}

provider "azapi" {}

provider "random" {}
