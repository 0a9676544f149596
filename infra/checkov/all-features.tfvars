# Every optional part switched on, so that checkov also scans the resources that are off by default
# (a resource with count = 0 is invisible to it). Used by tests/infra; not for deploying.
environment_name            = "checkov"
location                    = "swedencentral"
principal_id                = "00000000-0000-0000-0000-000000000000"
create_entra_app            = true
kubernetes_issuer           = "https://oidc.example.invalid/cluster"
kubernetes_namespace        = "ai"
kubernetes_service_account  = "gateway"
always_ready_instance_count = 1
create_ai_foundry           = true
