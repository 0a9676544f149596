"""Caller authentication: a bearer JWT in, a `Principal` out, or `InvalidToken` naming the failed check.

One job per module, composed by `authenticator` (the only entry point of the request path):

    extract        the token from the request headers (one token, one place)
    jws            strict compact-JWS parsing: size, segments, base64url, JSON, header policy
    selection      which identity provider a token belongs to (exact issuer, never a fallback)
    claims         time, audience, unique-id and email claims
    jwk            one JWK -> a public key bound to exactly one algorithm; a JWKS -> a key set
    signature      the signature check for that one algorithm
    addresses      which addresses an outbound fetch to an admin-chosen URL may reach (SSRF policy)
    fetch          the HTTP GET behind JWKS and discovery: caps, deadline, no redirects
    discovery      OpenID discovery documents
    jwks           per-provider key cache: TTL, background refresh, single-flight, cooldown, stale
    verifier       the ordered checks for one token (cheap first, key fetches last)
    identities     the principal and its external identities
    token_cache    verified tokens by hash, so a repeated token costs microseconds
    trace          a recorder of each check's outcome (explain) and the refusal value
    redact         fingerprints and escaping: what may reach logs and error messages
"""
