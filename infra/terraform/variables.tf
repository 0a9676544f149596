# The same parameters as infra/bicep/main.bicep, in snake_case (tests/infra compares them).

variable "environment_name" {
  description = "Name of the environment (azd: AZURE_ENV_NAME); seeds the name of every resource."
  type        = string

  validation {
    condition     = length(var.environment_name) >= 1 && length(var.environment_name) <= 64
    error_message = "environment_name must be 1 to 64 characters."
  }
}

variable "location" {
  description = "Region of every resource; Flex Consumption must be offered there."
  type        = string
}

variable "subscription_id" {
  description = "Subscription to deploy to (azd: AZURE_SUBSCRIPTION_ID). Empty: ARM_SUBSCRIPTION_ID or the Azure CLI's default."
  type        = string
  default     = ""
}

variable "openai_location" {
  description = "Region of the Azure OpenAI account when the model is not offered in `location`. Empty: `location`."
  type        = string
  default     = ""
}

variable "principal_id" {
  description = "Object id of the deployer (azd: AZURE_PRINCIPAL_ID). It gets Storage Table Data Contributor on the configuration tables so that `python -m shared apply -f` works. Empty: no assignment."
  type        = string
  default     = ""
}

variable "principal_type" {
  description = "Kind of principal `principal_id` is."
  type        = string
  default     = "User"

  validation {
    condition     = contains(["User", "ServicePrincipal", "Group"], var.principal_type)
    error_message = "principal_type must be User, ServicePrincipal or Group."
  }
}

variable "gateway_admins" {
  description = "GATEWAY_ADMINS: comma-separated principals that are gateway admins (bootstrap)."
  type        = string
  default     = ""
}

variable "table_prefix" {
  description = "GATEWAY_TABLE_PREFIX: prefix of every configuration table (a letter, then letters or digits)."
  type        = string
  default     = "gw"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9]{0,29}$", var.table_prefix))
    error_message = "table_prefix must be a letter then up to 29 letters or digits."
  }
}

variable "http_per_instance_concurrency" {
  description = "HTTP requests one instance serves at once. Python on Flex defaults to 1, far too few for a streaming proxy."
  type        = number
  default     = 16

  validation {
    condition     = var.http_per_instance_concurrency >= 1 && var.http_per_instance_concurrency <= 1000
    error_message = "http_per_instance_concurrency must be between 1 and 1000."
  }
}

variable "always_ready_instance_count" {
  description = "Always-ready instances for the HTTP functions (no cold start for that many). 0: none, pay per use only."
  type        = number
  default     = 0

  validation {
    condition     = var.always_ready_instance_count >= 0 && var.always_ready_instance_count <= 100
    error_message = "always_ready_instance_count must be between 0 and 100."
  }
}

variable "maximum_instance_count" {
  description = "Most instances the app may scale out to."
  type        = number
  default     = 40

  validation {
    condition     = var.maximum_instance_count >= 1 && var.maximum_instance_count <= 1000
    error_message = "maximum_instance_count must be between 1 and 1000."
  }
}

variable "instance_memory_mb" {
  description = "Memory of one instance, in MB."
  type        = number
  default     = 2048

  validation {
    condition     = contains([512, 2048, 4096], var.instance_memory_mb)
    error_message = "instance_memory_mb must be 512, 2048 or 4096."
  }
}

variable "openai_model_name" {
  description = "Model of the one Azure OpenAI deployment."
  type        = string
  default     = "gpt-4o-mini"
}

variable "openai_model_version" {
  description = "Version of that model."
  type        = string
  default     = "2024-07-18"
}

variable "openai_deployment_name" {
  description = "Name of the deployment (what a gateway model targets). Empty: the model name."
  type        = string
  default     = ""
}

variable "openai_deployment_sku" {
  description = "Deployment type (SKU) of the model deployment."
  type        = string
  default     = "GlobalStandard"
}

variable "openai_deployment_capacity" {
  description = "Capacity of the deployment, in thousands of tokens per minute."
  type        = number
  default     = 10

  validation {
    condition     = var.openai_deployment_capacity >= 1
    error_message = "openai_deployment_capacity must be at least 1."
  }
}

variable "create_ai_foundry" {
  description = "Create an AI Foundry resource (Cognitive Services kind AIServices, project management on, keyless) besides the Azure OpenAI account; the gateway's identity gets Azure AI User and Cognitive Services OpenAI User on it. Off by default."
  type        = bool
  default     = false
}

variable "create_entra_app" {
  description = "Create an Entra app registration whose federated credential is the managed identity (Workload Identity Federation). Needs directory rights (Application Developer or Application.ReadWrite.OwnedBy): off by default."
  type        = bool
  default     = false
}

variable "entra_app_display_name" {
  description = "Display name of that app registration. Empty: ai-gateway-<environment>."
  type        = string
  default     = ""
}

variable "kubernetes_issuer" {
  description = "OIDC issuer URL of a Kubernetes cluster whose service account may act as the managed identity. Empty: no such federated credential."
  type        = string
  default     = ""
}

variable "kubernetes_namespace" {
  description = "Namespace of that service account."
  type        = string
  default     = ""
}

variable "kubernetes_service_account" {
  description = "Name of that service account."
  type        = string
  default     = ""
}

variable "log_retention_days" {
  description = "Days Log Analytics keeps logs."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}
