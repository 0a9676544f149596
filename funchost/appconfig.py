"""What the host reads from the app folder: host.json's HTTP route prefix and local.settings.json's Values.

Values become the worker's environment under the host's own, as Core Tools does: a variable already
set in the environment wins over the same name in Values.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROUTE_PREFIX = "api"     # the host's default when host.json says nothing


@dataclass(frozen=True, slots=True)
class AppFolder:
    path: Path
    route_prefix: str
    values: Mapping[str, str]

    def worker_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """The worker's environment: Values, then `env` over them, then what the host itself sets."""
        return {**self.values, **env, "AzureWebJobsScriptRoot": str(self.path),
                "FUNCTIONS_WORKER_RUNTIME": "python"}


def _json(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path.name} must hold a JSON object")
    return loaded


def load(folder: str | os.PathLike[str]) -> AppFolder:
    """The app folder's settings; ValueError naming the file when one is malformed."""
    path = Path(folder).resolve()
    if not (path / "function_app.py").is_file():
        raise ValueError(f"{path} has no function_app.py")
    extensions = _json(path / "host.json").get("extensions")
    http = extensions.get("http") if isinstance(extensions, dict) else None
    prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX) if isinstance(http, dict) else DEFAULT_ROUTE_PREFIX
    values = _json(path / "local.settings.json").get("Values") or {}
    if not isinstance(prefix, str):
        raise ValueError("host.json: extensions.http.routePrefix must be a string")
    if not isinstance(values, dict):
        raise ValueError("local.settings.json: Values must be an object")
    return AppFolder(path, prefix, {str(k): str(v) for k, v in values.items()})
