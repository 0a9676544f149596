"""What the MCP and agent planes share to call a remote server on a caller's behalf.

    client     one HTTP exchange with an MCP server or agent, under the address policy and a deadline
    seal       the keys that seal session ids, OAuth state and stored tokens, and sign identity assertions
    auth       the headers the gateway authenticates itself with (never the caller's credentials)
    audit      one record per tool call or agent message
    services   the bundle the composition root builds once
"""
