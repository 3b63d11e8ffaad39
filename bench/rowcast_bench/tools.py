"""Finds or installs the external programs a benchmark run needs: ghz and taskset."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: The ghz version the harness installs (and the checked-in configs were tried with).
GHZ_MODULE: Final = "github.com/bojand/ghz/cmd/ghz"
GHZ_VERSION: Final = "v0.121.0"


class ToolError(Exception):
    """A program the benchmark needs is missing and cannot be installed."""


@dataclass(frozen=True)
class GhzInstaller:
    """Installs the pinned ghz with `go install` into a tools directory, once.

    A stamp file beside the binary records the module@version it was built from (the same
    convention as scripts/install-go-tools), so a changed pin reinstalls and an unchanged one
    costs nothing.
    """

    tools_dir: Path

    @property
    def spec(self) -> str:
        return f"{GHZ_MODULE}@{GHZ_VERSION}"

    @property
    def binary(self) -> Path:
        return self.tools_dir / "ghz"

    def ensure(self) -> Path:
        """The path of a ghz built from the pinned version, installing it if needed."""
        stamp = self.tools_dir / ".ghz.version"
        if self.binary.is_file() and _read(stamp) == self.spec:
            return self.binary
        go = shutil.which("go")
        if go is None:
            raise ToolError("`go` is not on PATH; it is needed once to install ghz")
        self.tools_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOBIN": str(self.tools_dir.resolve()), "GOFLAGS": "-mod=mod"}
        done = subprocess.run(
            [go, "install", self.spec],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0 or not self.binary.is_file():
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise ToolError(f"go install {self.spec} failed (exit {done.returncode}):\n{tail}")
        stamp.write_text(self.spec + "\n")
        return self.binary


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def taskset() -> str:
    """The path of `taskset` (util-linux), which pins processes to cores."""
    found = shutil.which("taskset")
    if found is None:
        raise ToolError("`taskset` (util-linux) is not on PATH; it pins ghz and the servers")
    return found


def pinned(cpu: int, argv: list[str]) -> list[str]:
    """`argv` run on core `cpu` only."""
    return [taskset(), "-c", str(cpu), *argv]


def available_cpus() -> list[int]:
    """The cores this process may run on, sorted."""
    return sorted(os.sched_getaffinity(0))
