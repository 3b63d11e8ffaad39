"""OS processes of the embedded HBase: the JVMs this Python process launched (kept here so
they are reaped, never left as zombies) and /proc-based checks of any pid. Linux only."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Child:
    """A JVM this Python process launched: its handle and the command line we gave it."""

    proc: subprocess.Popen[bytes]
    argv: list[str]


#: Popen handles of JVMs this Python process started, by pid. Kept alive here (not on the
#: StandaloneHBase instance) so that dropping an instance neither leaks zombies nor makes
#: Popen.__del__ warn "subprocess is still running"; entries go once the process is reaped.
CHILDREN: dict[int, Child] = {}
#: Exit codes of children reaped by `alive`, so a failed start can still report them.
REAPED: dict[int, int] = {}


def register(proc: subprocess.Popen[bytes], argv: list[str]) -> None:
    """Keep the handle of a JVM we launched, so that `alive` reaps it when it exits."""
    CHILDREN[proc.pid] = Child(proc, argv)


def clip(line: str, width: int = 240) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def tail_lines(path: Path, count: int) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 2_000_000))
            data = handle.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-count:]


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode("utf-8", "replace").split("\0")


def alive(pid: int) -> bool:
    """True if `pid` runs (a zombie does not count); reaps our own children as a side effect."""
    child = CHILDREN.get(pid)
    if child is not None:
        code = child.proc.poll()
        if code is None:
            return True
        REAPED[pid] = code
        del CHILDREN[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name (which may itself contain spaces).
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def exit_code(pid: int | None) -> int | None:
    """Exit code of a child we started and already reaped, if we know it."""
    if pid is None:
        return None
    child = CHILDREN.get(pid)
    if child is not None:
        return child.proc.poll()
    return REAPED.get(pid)


def send_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_gone(pids: Sequence[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if not any(alive(pid) for pid in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
