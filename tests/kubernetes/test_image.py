"""The container image (Dockerfile, .dockerignore), checked without a registry or a builder: parsed,
it is multi-stage with a runtime stage free of compilers, a pinned base, a numeric non-root user, no
setting or credential baked in, and `python -m shared serve` as its entrypoint; and that entrypoint,
run under the image's environment from a copy of exactly what .dockerignore lets into the build, serves
/health on GATEWAY_PORT without writing a byte beside the code (the root filesystem is read-only)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from sandbox.azurite import Azurite, free_port, port_open, terminate
from shared.settings import SETTINGS, load
from tests.harness import Tables, gateway_env, unique_prefix

ROOT = Path(__file__).resolve().parents[2]
BASE_RE = re.compile(r"^python:3\.13\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?$")
RUNTIME_ENV = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PATH", "HOME", "TMPDIR"}


@dataclass(frozen=True)
class Instruction:
    command: str
    args: str


def stages(text: str) -> tuple[dict[str, str], list[list[Instruction]]]:
    """The ARG defaults before the first FROM, and each stage's instructions (continuations joined)."""
    joined = re.sub(r"\\\n", " ", text)
    args: dict[str, str] = {}
    found: list[list[Instruction]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        command, _, rest = line.partition(" ")
        instruction = Instruction(command.upper(), rest.strip())
        if instruction.command == "FROM":
            found.append([])
        if not found:
            assert instruction.command == "ARG", line
            name, _, default = instruction.args.partition("=")
            args[name] = default
        else:
            found[-1].append(instruction)
    return args, found


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for i in stage:
        if i.command == "ENV":
            env.update(dict(pair.split("=", 1) for pair in i.args.split()))
    return env


ARGS, STAGES = stages((ROOT / "Dockerfile").read_text())
RUNTIME = STAGES[-1]


def only(stage: list[Instruction], command: str) -> str:
    found = [i.args for i in stage if i.command == command]
    assert len(found) == 1, f"{len(found)} {command}"
    return found[0]


def test_the_base_is_pinned_and_the_runtime_stage_has_no_compiler() -> None:
    assert BASE_RE.match(ARGS["PYTHON_IMAGE"]), ARGS["PYTHON_IMAGE"]
    assert len(STAGES) >= 2
    for stage in STAGES:
        assert stage[0].args.split()[0] == "${PYTHON_IMAGE}", "every stage on the pinned base"
    assert RUNTIME[0].args == "${PYTHON_IMAGE} AS runtime"
    assert not any(i.command == "RUN" for i in RUNTIME), "nothing installed in the runtime stage"
    assert [i.args.split()[0] for i in RUNTIME if i.command == "COPY"] == ["--from=build", "--from=build"]


def test_the_user_is_numeric_and_not_root() -> None:
    user, _, group = only(RUNTIME, "USER").partition(":")
    assert user.isdigit() and int(user) > 0 and (not group or (group.isdigit() and int(group) > 0))


def test_the_entrypoint_serves_on_every_address_at_gateway_port() -> None:
    entrypoint = json.loads(only(RUNTIME, "ENTRYPOINT"))
    assert entrypoint[1:] == ["-m", "shared", "serve", "--host", "0.0.0.0"]
    assert entrypoint[0].startswith(env_of(RUNTIME)["PATH"].split(":")[0] + "/")
    assert not any(i.command == "CMD" for i in RUNTIME)
    port = load(env_of(RUNTIME)).port
    assert port == 8080 and only(RUNTIME, "EXPOSE") == str(port)


def test_no_setting_or_credential_is_baked_in() -> None:
    settings = {s.name for s in SETTINGS}
    for stage in STAGES:
        for name in env_of(stage):
            assert name in RUNTIME_ENV | {"GATEWAY_PORT"} or name.startswith("PIP_"), name
    assert set(env_of(RUNTIME)) - RUNTIME_ENV == {"GATEWAY_PORT"} and "GATEWAY_PORT" in settings
    text = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"(?i)(secret|password|connection|api[-_]?key|token)\s*=", text)
    assert not any(i.command == "ARG" for stage in STAGES for i in stage), "build arguments end up in layers"
    assert env_of(RUNTIME)["PYTHONDONTWRITEBYTECODE"] == "1"


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore's rule: the last pattern matching the path (or a parent of it) decides."""
    verdict = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/").removeprefix("**/")
        candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if pattern.removeprefix("!").startswith("**/"):
            candidates += parts
        if any(fnmatch.fnmatchcase(c, glob) for c in candidates):
            verdict = not negate
    return verdict


PATTERNS = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(("path", "sent"), [
    ("requirements.txt", True), ("shared/__main__.py", True), ("shared/upstream/assertions.py", True),
    ("local.settings.json", False), (".venv/bin/python", False), (".git/config", False),
    ("tests/harness.py", False), ("sandbox/entra.py", False), ("infra/main.bicep", False),
    ("shared/__pycache__/x.cpython-313.pyc", False), ("requirements-dev.txt", False), (".env", False),
])
def test_the_build_context_is_an_allowlist(path: str, sent: bool) -> None:
    assert ignored(path, PATTERNS) is not sent


def context_copy(destination: Path) -> Path:
    """/app as the image lays it out: what the runtime stage copies, from what the context admits."""
    app = destination / "app"
    shutil.copytree(ROOT / "shared", app / "shared",
                    ignore=lambda d, names: [n for n in names if ignored(
                        str((Path(d) / n).relative_to(ROOT)), PATTERNS)])
    return app


def snapshot(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def test_the_entrypoint_answers_health_and_writes_nothing_beside_the_code(
        azurite: Azurite, tmp_path: Path) -> None:
    app, tmp = context_copy(tmp_path), tmp_path / "tmp"
    tmp.mkdir()
    before = snapshot(app)
    entrypoint = json.loads(only(RUNTIME, "ENTRYPOINT"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "AZURE_", "PYTHON"))}
    env.update({**env_of(RUNTIME), "PATH": os.environ["PATH"], "HOME": str(tmp), "TMPDIR": str(tmp),
                "GATEWAY_PORT": str(port),
                **gateway_env(Tables(azurite, unique_prefix()))})
    process = subprocess.Popen([sys.executable, *entrypoint[1:]], cwd=app, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read().decode()
            time.sleep(0.05)
        answer = requests.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
    finally:
        terminate(process)
    assert snapshot(app) == before
