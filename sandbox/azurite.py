"""Starts Azurite (from node_modules) on loopback for local runs and tests, and stops it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def terminate(process: subprocess.Popen[bytes] | None, grace: float = 10) -> None:
    """Stop a child process: politely, then firmly."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Azurite:
    """One Azurite process; `tables_only` starts just the table service (what the gateway needs)."""

    def __init__(self, location: Path, *, table_port: int | None = None, tables_only: bool = True,
                 blob_port: int = 10000, queue_port: int = 10001) -> None:
        self.location = location
        self.table_port = table_port or free_port()
        self.tables_only = tables_only
        self.blob_port, self.queue_port = blob_port, queue_port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};")

    @property
    def full_connection_string(self) -> str:
        """With the blob and queue endpoints too: what `UseDevelopmentStorage=true` means, on these ports."""
        return (self.connection_string + f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
                f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};")

    def start(self, timeout: float = 30) -> Azurite:
        binary = ROOT / "node_modules" / ".bin" / ("azurite-table" if self.tables_only else "azurite")
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: run `npm ci` (make does it for you)")
        self.location.mkdir(parents=True, exist_ok=True)
        # without --disableTelemetry, Azurite reports to Microsoft and, offline, takes 10 s to stop
        args = [str(binary), "--location", str(self.location), "--skipApiVersionCheck", "--silent",
                "--loose", "--disableTelemetry",
                "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port)]
        if not self.tables_only:
            args += ["--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
                     "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port)]
        log = (self.location / "azurite.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_open(self.table_port):
            if self.process.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self.process.returncode}; see "
                                   f"{self.location / 'azurite.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Azurite did not listen on port {self.table_port} in {timeout} s")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def wipe(self) -> None:
        shutil.rmtree(self.location, ignore_errors=True)
