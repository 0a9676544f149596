"""`python -m funchost.generate`: the Python code of the vendored Functions protos, into funchost/_rpc.

The protos import each other as "identity/..." and "shared/...". Generated as they are, the code would
say `from shared import NullableTypes_pb2`, and `shared` is the gateway's own package. So they are
staged under funchost/_rpc/ with their imports rewritten to match, and the code imports
`funchost._rpc.shared` instead. Generated code is never committed (`make install` runs this).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent / "proto"
ROOT = PROTO_DIR.parent.parent
PACKAGE = "funchost/_rpc"
PROTOS = ("FunctionRpc.proto", "identity/ClaimsIdentityRpc.proto", "shared/NullableTypes.proto")
LOCAL_IMPORT = re.compile(r'^import "((?:identity|shared)/[A-Za-z]+\.proto)";', flags=re.M)


def _stage(into: Path) -> None:
    for name in PROTOS:
        text = (PROTO_DIR / name).read_text(encoding="utf-8")
        target = into / PACKAGE / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(LOCAL_IMPORT.sub(rf'import "{PACKAGE}/\1";', text), encoding="utf-8")


def generate(root: Path = ROOT) -> Path:
    """Writes funchost/_rpc under `root`; returns its path. Raises RuntimeError if protoc fails."""
    from grpc_tools import protoc

    out = root / PACKAGE
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as staging:
        _stage(Path(staging))
        well_known = str(resources.files("grpc_tools") / "_proto")
        args = ["protoc", f"-I{staging}", f"-I{well_known}", f"--python_out={root}",
                f"--grpc_python_out={root}", *(f"{staging}/{PACKAGE}/{name}" for name in PROTOS)]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed on the vendored protos")
    for package in (out, out / "identity", out / "shared"):
        (package / "__init__.py").touch()
    return out


if __name__ == "__main__":
    try:
        print(f"generated {generate().relative_to(ROOT)}")
    except RuntimeError as exc:
        sys.exit(f"error: {exc}")
