"""The control plane: the /manage API (SPEC §3), its authorization, OpenAPI document and audit trail."""
