"""The running sandbox's pid file (SANDBOX_DIR/run.pid), so `make stop` can stop a run in the
background, and a second `make run` can say that one is already running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def _alive(pid: int) -> bool:
    """The process exists and has not exited (an exited child its parent has yet to reap has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    return True


def _is_sandbox(pid: int) -> bool:
    """The process is a `python -m sandbox` (a recycled pid must not be signalled)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.parent.parent.is_dir():
        with contextlib.suppress(OSError):
            return b"\0-m\0sandbox\0" in proc.read_bytes()
        return False
    answer = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True,
                            check=False)
    return "-m sandbox" in answer.stdout


def running(path: Path) -> int | None:
    """The pid of the sandbox the file names, if it is still running."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() and _alive(pid) and _is_sandbox(pid) else None


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(f"{os.getpid()}\n")
    temporary.replace(path)


def remove(path: Path) -> None:
    """Remove the file if it still names this process."""
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def stop(path: Path, timeout: float = 15) -> str:
    """Ask the sandbox the file names to stop as on Ctrl-C, and wait for it to be gone (RuntimeError
    if it takes longer than `timeout`)."""
    pid = running(path)
    if pid is None:
        with contextlib.suppress(OSError):
            path.unlink()
        return "no sandbox is running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the sandbox (pid {pid}) has not stopped in {timeout:g} s")
        time.sleep(0.05)
    return f"stopped the sandbox (pid {pid})"
