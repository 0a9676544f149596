"""Local development tooling: a development identity provider and an Azure OpenAI emulator.

Never deployed (.funcignore) and never imported by the gateway's own code.
"""
