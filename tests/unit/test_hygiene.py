"""ruff (lint and format) and mypy strict report nothing on the hand-written code: services,
clients/python, tools, bench, tests and scripts, the paths [tool.mypy] `files` names in the
root pyproject.toml. Generated code (gen/) is excluded by both tools' config."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]


def run_tool(*args: str) -> tuple[int, str]:
    """Run the tool installed beside this Python from the repository root (so it reads the
    root pyproject.toml, and mypy keeps its cache in .mypy_cache): its exit code and output."""
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return result.returncode, result.stdout + result.stderr


def test_the_checked_paths_hold_the_test_suite_and_every_package() -> None:
    """What the checks cover: every hand-written package, the tests and the scripts."""
    assert set(CHECKED) == {"services", "clients/python", "tools", "bench", "tests", "scripts"}


@pytest.mark.parametrize(
    "command", [("check",), ("format", "--check")], ids=["ruff-check", "ruff-format"]
)
def test_ruff_reports_nothing(command: tuple[str, ...]) -> None:
    """`ruff check` finds no lint error and `ruff format --check` no unformatted file."""
    code, output = run_tool("ruff", *command, *CHECKED)
    assert code == 0, f"ruff {' '.join(command)}:\n{output}"


def test_mypy_strict_reports_nothing() -> None:
    """mypy (strict, configured in pyproject.toml) finds no type error in the checked paths."""
    code, output = run_tool("mypy")
    assert code == 0, f"mypy:\n{output}"
