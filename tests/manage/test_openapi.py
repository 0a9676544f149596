"""/manage/openapi.json matches what the code does: a bounded schemathesis run against a real gateway
(no 5xx, every status, header, content type and body as documented), and the document lists exactly
the routes served."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from shared import routes
from tests.harness import Tables, gateway_env, sandbox_config

PROVIDER = "p7x2k9qz4w"

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")


def test_document_covers_every_manage_route() -> None:
    from shared.manage.openapi import document

    doc = document()
    served = {"/" + r.route: {m.lower() for m in r.methods} for r in routes.ROUTES
              if r.route.startswith("manage/")}
    documented = {path: {m for m in ops if m != "parameters"} for path, ops in doc["paths"].items()}
    assert documented == served


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
        tables: Tables, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, start_gateway: Any,
        tmp_path: Path) -> None:
    # the fuzzer, an admin, may delete anything it can name: its own provider gets a name it won't guess
    doc = sandbox_config(idp, emulator, workspaces=[{"name": "research"}])
    doc["identity_providers"][0]["name"] = PROVIDER
    doc["external_identities"][0]["identity_provider"] = PROVIDER
    tables.apply(doc)
    gw = start_gateway(gateway_env(tables, GATEWAY_ADMINS=f"user:{PROVIDER}/root"))
    token = idp.mint("root", audience="api://ai-gateway")
    assert requests.get(gw.url + "/manage/openapi.json", timeout=30).status_code == 200
    assert requests.get(gw.url + "/manage/models", headers={"Authorization": f"Bearer {token}"},
                        timeout=30).status_code == 200
    # identity providers last: changing the one that signs the fuzzer's own token ends the run's auth
    for selection in (("--exclude-path-regex", "^/manage/identity-providers/"),
                      ("--include-path-regex", "^/manage/identity-providers/")):
        result = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", gw.url + "/manage/openapi.json", *selection,
             "--checks", CHECKS, "--max-examples", "8", "--seed", "20261123", "--workers", "1",
             "--phases", "examples,coverage,fuzzing", "--request-timeout", "20", "--no-shrink",
             "--suppress-health-check", "all", "-H", f"Authorization: Bearer {token}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=240, env={**os.environ, "NO_COLOR": "1"})
        report = result.stdout[-6000:].replace(token, "<token>")
        assert result.returncode == 0, report + result.stderr[-2000:].replace(token, "<token>")
        assert "Authentication failed" not in report, report
        assert " 0 generated" not in report
