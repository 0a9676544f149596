"""`python -m sandbox token`: a token for any user and groups, signed with the sandbox identity
provider's persisted key, so RBAC can be tried locally before a real provider is wired.

The key (SANDBOX_DIR/idp-key.pem, mode 0600) is the one the running sandbox publishes in its JWKS,
and the issuer is its address, so the gateway accepts these tokens as `user:sandbox/<sub>`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sandbox.idp import DevIdentityProvider
from sandbox.options import OptionError, Options
from sandbox.register import AUDIENCE

LIST_CLAIMS = ("groups", "roles")              # lists in every provider's tokens, even with one value
SET_HERE = ("sub", "iss", "aud", "exp", "iat", "nbf", "jti")
MAX_MINUTES = 7 * 24 * 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sub", required=True, help="the user's id: the principal is user:sandbox/SUB")
    parser.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE",
                        help="a claim (repeat for more values; groups and roles are always lists)")
    parser.add_argument("--email", help="the email claim")
    parser.add_argument("--minutes", type=int, default=60, help="lifetime (default 60)")


def claims_of(pairs: list[str], email: str | None) -> dict[str, Any]:
    """NAME=VALUE pairs as claims: a name given twice, or a list claim, makes a list."""
    values: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise OptionError(f"--claim {pair!r} must be NAME=VALUE")
        if name in SET_HERE:
            raise OptionError(f"--claim {name} is set by the sandbox (use --sub or --minutes)")
        values.setdefault(name, []).append(value)
    claims: dict[str, Any] = {k: v if len(v) > 1 or k in LIST_CLAIMS else v[0] for k, v in values.items()}
    if email:
        claims["email"] = email
    return claims


def mint(args: argparse.Namespace, opts: Options) -> int:
    if not args.sub.strip() or any(ord(c) < 0x20 for c in args.sub):
        raise OptionError("--sub must be a non-empty user id without control characters")
    if not 1 <= args.minutes <= MAX_MINUTES:
        raise OptionError(f"--minutes must be from 1 to {MAX_MINUTES}")
    if not opts.key_file.exists():
        raise OptionError(f"no sandbox signing key in {opts.state}: run `make run` once first")
    claims = claims_of(args.claim, args.email)
    idp = DevIdentityProvider(port=opts.idp_port, key_file=opts.key_file)
    token = idp.mint(args.sub, claims=claims, audience=AUDIENCE, expires_in=args.minutes * 60)
    print(token)
    print(f"a token for user:sandbox/{args.sub}, valid {args.minutes} min, issued by {idp.issuer}",
          file=sys.stderr)
    return 0
