"""A stand-in for the Azure Functions host, for development and tests only (never deployed): serves
function_app.py through the real Python 3.13 worker path (docs/functions-host.md)."""
