"""Turns what Entra ID (and azure-identity on its behalf) answers into words naming the field to fix.

Entra's errors carry an AADSTS code; users fight with them because the text rarely says which value
was wrong. `explain` maps each code we know to the field at fault and quotes the values the
gateway presented (the assertion's iss/sub/aud, read unverified), so the 503 body and `status()` say,
for instance, which subject no federated credential matched. Nothing here ever quotes a token, a
secret or an assertion.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .problem import CredentialProblem

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
_CODE_RE = re.compile(r"AADSTS(\d+)")
# Entra appends these to every description; they are noise in a one-line message.
_TAIL_RE = re.compile(r"\s*(Trace ID|Correlation ID|Timestamp):.*$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class EntraError:
    """One error answer of Entra's token endpoint (its JSON: error, error_description, error_codes...)."""

    error: str
    description: str
    codes: tuple[int, ...] = ()
    status: int | None = None
    trace_id: str | None = None
    correlation_id: str | None = None

    @property
    def code(self) -> int | None:
        return self.codes[0] if self.codes else None

    @property
    def summary(self) -> str:
        """The description without its AADSTS prefix and trace lines, cut to its first sentences."""
        text = _TAIL_RE.sub("", self.description)
        text = re.sub(r"^AADSTS\d+:\s*", "", text.strip())
        return text[:300].rstrip()


def parse_error(body: Any, status: int | None = None) -> EntraError | None:
    """Entra's error JSON (bytes, text or a mapping), or None when the body is not one."""
    doc = body
    if isinstance(body, bytes | str):
        try:
            doc = json.loads(body)
        except ValueError:
            return None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("error"), str):
        return None
    description = str(doc.get("error_description") or "")
    codes = tuple(int(c) for c in doc.get("error_codes") or () if isinstance(c, int))
    if not codes:
        codes = tuple(int(c) for c in _CODE_RE.findall(description)[:1])
    return EntraError(error=doc["error"], description=description, codes=codes, status=status,
                      trace_id=_str_or_none(doc.get("trace_id")),
                      correlation_id=_str_or_none(doc.get("correlation_id")))


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the gateway presented to Entra: enough to name the value to fix, never a secret."""

    auth_type: str
    tenant_id: str
    client_id: str
    authority: str
    scope: str
    secret_env: str | None = None
    certificate_path: str | None = None
    assertion_source: str | None = None                              # managed-identity, token-file, ...
    assertion_options: Mapping[str, Any] = field(default_factory=dict)  # namespace, path, client_id, ...
    assertion_claims: Mapping[str, Any] = field(default_factory=dict)   # iss, sub, aud, nbf, exp (unverified)

    @property
    def credential_words(self) -> str:
        return {"workload-identity": "the client assertion", "client-secret": "the client secret",
                "certificate": "the certificate"}.get(self.auth_type, "the token request")

    def claim(self, name: str) -> str:
        value = self.assertion_claims.get(name)
        if isinstance(value, list):
            return ", ".join(str(v) for v in value) if value else "(none)"
        return str(value) if value not in (None, "") else "(none)"


def _subject_hint(a: Attempt) -> str:
    o = a.assertion_options
    if a.assertion_source == "kubernetes":
        # namespace and service_account may be left to default to the pod's own: the token says which
        return (f"; the gateway presents {a.claim('sub')} (auth.assertion.namespace and service_account, "
                "which default to the pod's own)")
    if a.assertion_source == "managed-identity":
        return (f"; the subject is the object (principal) id of managed identity {o.get('client_id')} "
                "(auth.assertion.client_id)")
    if a.assertion_source == "token-file":
        return f"; the subject is the sub of the token in {o.get('path')} (the pod's service account)"
    return ""


def _issuer_hint(a: Attempt) -> str:
    if a.assertion_source == "managed-identity":
        return "; for a managed identity it is https://login.microsoftonline.com/<tenant id>/v2.0"
    if a.assertion_source in ("kubernetes", "token-file"):
        return "; for Kubernetes it is the cluster's OIDC issuer URL"
    return ""


def _fic_issuer(a: Attempt) -> tuple[str, str]:
    return ("issuer", f"no federated credential on app {a.client_id} has issuer {a.claim('iss')!r}: check "
            "the federated credential's issuer (it must equal the assertion's iss exactly, trailing "
            f"slash included){_issuer_hint(a)}")


def _fic_subject(a: Attempt) -> tuple[str, str]:
    return ("subject", f"no federated credential on app {a.client_id} matches issuer {a.claim('iss')!r} "
            f"and subject {a.claim('sub')!r}: check the federated credential's issuer and subject "
            f"(subject matching is case-sensitive){_subject_hint(a)}")


def _fic_audience(a: Attempt) -> tuple[str, str]:
    return ("audience", f"no federated credential on app {a.client_id} with issuer {a.claim('iss')!r} "
            f"and subject {a.claim('sub')!r} accepts audience {a.claim('aud')!r}: the federated "
            f"credential's audiences must contain the assertion's aud (normally {EXCHANGE_AUDIENCE})")


def _fic_any(a: Attempt) -> tuple[str, str]:
    return ("issuer, subject, audience",
            f"no federated credential on app {a.client_id} matches the presented assertion (issuer "
            f"{a.claim('iss')!r}, subject {a.claim('sub')!r}, audience {a.claim('aud')!r}): check the "
            "federated credential's issuer, subject and audience (subject matching is case-sensitive)"
            f"{_subject_hint(a)}")


def _no_fic(a: Attempt) -> tuple[str, str]:
    return ("federated credential", f"app {a.client_id} has no federated credentials: add one with issuer "
            f"{a.claim('iss')!r}, subject {a.claim('sub')!r} and audience {EXCHANGE_AUDIENCE!r}")


def _client_id(a: Attempt) -> tuple[str, str]:
    return ("client_id", f"tenant {a.tenant_id} has no application with client id {a.client_id!r}: check "
            "auth.client_id (the app registration's Application (client) ID), and auth.tenant_id if the "
            "app lives in another tenant")


def _tenant(a: Attempt) -> tuple[str, str]:
    return ("tenant_id", f"Entra at {a.authority} has no tenant {a.tenant_id!r}: check auth.tenant_id (the "
            "Directory (tenant) ID), and auth.authority_host if the tenant is in another cloud")


def _bad_secret(a: Attempt) -> tuple[str, str]:
    return ("secret_env", f"app {a.client_id} has no client secret with the value in environment variable "
            f"{a.secret_env}: put the secret's Value there (not its Secret ID), or create a new secret")


def _expired_secret(a: Attempt) -> tuple[str, str]:
    return ("secret_env", f"the client secret in environment variable {a.secret_env} has expired for app "
            f"{a.client_id}: create a new secret and put its Value there")


def _signature(a: Attempt) -> tuple[str, str]:
    if a.auth_type == "certificate":
        return ("certificate_path", f"the certificate at {a.certificate_path} is not registered on app "
                f"{a.client_id}: upload its public certificate to the app registration, or fix "
                "auth.certificate_path")
    return ("issuer", f"the assertion's signature does not verify against the keys that issuer "
            f"{a.claim('iss')!r} publishes: Entra must be able to fetch the issuer's OpenID configuration "
            "and JWKS, and they must hold the signing key")


def _discovery(a: Attempt) -> tuple[str, str]:
    return ("issuer", f"Entra could not fetch the OpenID configuration of issuer {a.claim('iss')!r}: the "
            "issuer URL must be reachable from the internet over https (for a private cluster, publish "
            "its discovery document and JWKS)")


def _time_range(a: Attempt) -> tuple[str, str]:
    window = f"valid from {_when(a.assertion_claims.get('nbf'))} to {_when(a.assertion_claims.get('exp'))}"
    if a.assertion_source == "token-file":
        return ("assertion.path", f"the client assertion read from {a.assertion_options.get('path')} is not "
                f"within its valid time range ({window}): the file is no longer rotated (on AKS the "
                "workload identity webhook projects it), or this machine's clock is off")
    return ("assertion", f"the client assertion is not within its valid time range ({window}): check this "
            "machine's clock")


def _locked(a: Attempt) -> tuple[str, str]:
    return ("credential", f"Entra has temporarily blocked sign-ins of app {a.client_id} after too many "
            "failed attempts or from a suspicious address: fix the credential, then wait before retrying")


def _scope(a: Attempt) -> tuple[str, str]:
    return ("scope", f"Entra refused scope {a.scope!r}: set auth.scope to the resource's '/.default' scope "
            "(https://cognitiveservices.azure.com/.default for Azure OpenAI, https://ai.azure.com/.default "
            "for Foundry projects)")


def _resource(a: Attempt) -> tuple[str, str]:
    return ("scope", f"tenant {a.tenant_id} has no resource for scope {a.scope!r}: check auth.scope (and "
            "auth.authority_host: each cloud has its own resource URIs)")


def _disabled(a: Attempt) -> tuple[str, str]:
    return ("client_id", f"app {a.client_id} is disabled in tenant {a.tenant_id}: enable its service "
            "principal, or fix auth.client_id")


def _public_client(a: Attempt) -> tuple[str, str]:
    return ("client_id", f"app {a.client_id} is a public client and cannot authenticate as itself: turn "
            "off 'Allow public client flows', or fix auth.client_id")


def _conditional_access(a: Attempt) -> tuple[str, str]:
    return ("conditional access", f"a conditional access policy blocks app {a.client_id}: ask the tenant "
            "administrator to exclude the workload identity or allow this location")


def _bad_tenant_id(a: Attempt) -> tuple[str, str]:
    return ("tenant_id", f"{a.tenant_id!r} is not a valid tenant: set auth.tenant_id to the Directory "
            "(tenant) ID, a GUID")


_EXPLAIN: dict[int, Callable[[Attempt], tuple[str, str]]] = {
    70021: _fic_any,
    700211: _fic_issuer,
    700212: _fic_audience,
    700213: _fic_subject,
    70025: _no_fic,
    700016: _client_id,
    90002: _tenant,
    900023: _bad_tenant_id,
    7000215: _bad_secret,
    7000222: _expired_secret,
    700027: _signature,
    50013: _signature,
    50166: _discovery,
    700024: _time_range,
    50053: _locked,
    70011: _scope,
    1002012: _scope,
    500011: _resource,
    7000112: _disabled,
    700025: _public_client,
    53003: _conditional_access,
}
_TRANSIENT = frozenset({90033, 50196, 50058, 90006})  # service busy, loop detected, ...


def explain(error: EntraError, attempt: Attempt) -> CredentialProblem:
    """Entra's refusal in words: what was refused, why, and which field to fix."""
    code = error.code
    label = f"AADSTS{code}" if code else error.error
    explainer = _EXPLAIN.get(code) if code else None
    if explainer is not None:
        field_name, why = explainer(attempt)
        return CredentialProblem(f"Entra refused {attempt.credential_words} ({label}): {why}",
                                 field=field_name, trace_id=error.trace_id)
    transient = code in _TRANSIENT or error.error == "temporarily_unavailable" or (error.status or 0) >= 500
    what = f": {error.summary}" if error.summary else ""
    if transient:
        return CredentialProblem(f"Entra at {attempt.authority} is unavailable ({label}{what})",
                                 transient=True, trace_id=error.trace_id)
    return CredentialProblem(f"Entra refused the token request ({label}){what}", trace_id=error.trace_id)


def _when(value: Any) -> str:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "(unset)"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        inner = getattr(current, "inner_exception", None)
        current = inner if isinstance(inner, BaseException) else (current.__cause__ or current.__context__)
    return seen


def transport_problem(exc: BaseException, where: str, what: str, field_name: str) -> CredentialProblem:
    """A failure to reach `where` (connection refused, TLS, timeout) in words; `what` names the party
    and `field_name` the auth field (relative to `auth`) that says where it is."""
    chain = _chain(exc)
    if any(isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e)
           for e in chain):
        return CredentialProblem(f"the TLS certificate of {what} at {where} is not trusted: check "
                                 f"auth.{field_name}, or add its CA to the trust store (SSL_CERT_FILE)",
                                 field=field_name)
    if any(isinstance(e, TimeoutError) for e in chain):
        return CredentialProblem(f"{what} at {where} did not answer in time", field=field_name,
                                 transient=True)
    reason = type(chain[-1]).__name__
    return CredentialProblem(f"cannot reach {what} at {where} ({reason}): check auth.{field_name} and the "
                             "network", field=field_name, transient=True)


def problem_from_exception(exc: Exception, attempt: Attempt) -> CredentialProblem:
    """azure-identity's exception for one token request to Entra, translated."""
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, ClientAuthenticationError):
        response = getattr(exc, "response", None)
        parsed = None
        if response is not None:
            try:
                parsed = parse_error(response.text(), getattr(response, "status_code", None))
            except Exception:  # the body may be unread or undecodable; fall back to the message
                parsed = None
        if parsed is None:
            codes = tuple(int(c) for c in _CODE_RE.findall(str(exc.message))[:1])
            if codes:
                parsed = EntraError(error="invalid_request", description=str(exc.message), codes=codes)
        if parsed is not None:
            return explain(parsed, attempt)
        status = getattr(response, "status_code", None)
        if status and status >= 500:
            return CredentialProblem(f"Entra at {attempt.authority} is unavailable (HTTP {status})",
                                     transient=True)
        return CredentialProblem(f"Entra refused {attempt.credential_words}: {_first_line(exc.message)}")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return transport_problem(exc, attempt.authority, "Entra", "authority_host")
    if isinstance(exc, ValueError):
        return CredentialProblem(f"azure-identity rejected the account's settings: {exc}")
    return CredentialProblem(f"token request failed ({type(exc).__name__}): {_first_line(str(exc))}")


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0][:300] if (text or "").strip() else "(no detail)"
