"""The control plane: the /manage API, its authorization, OpenAPI document and audit trail."""
