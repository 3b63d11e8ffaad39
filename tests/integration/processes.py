"""What runs on this machine, read from /proc independently of the runtime's own code (so a
test of `stop` does not trust the code it tests)."""

from __future__ import annotations

from pathlib import Path


def marked_processes(home: Path) -> list[int]:
    """Pids of every live (not zombie) process carrying this home's JVM marker."""
    marker = f"-Drowcast.home={home.resolve()}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if marker in argv and state != "Z":
            pids.append(int(entry.name))
    return pids
