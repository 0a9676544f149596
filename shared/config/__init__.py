"""The gateway's configuration: its model, file schema, table store and in-memory snapshot."""
