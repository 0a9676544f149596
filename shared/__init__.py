"""The gateway: authenticates callers' JWTs and forwards OpenAI-style requests to Azure."""
