"""Generate the Python code for protos/ into gen/python/rowcast/v1 (the one generated folder).

Usage: python scripts/gen_protos.py [--out DIR]

Uses the protoc bundled in grpcio-tools and the typed-stub plugins of mypy-protobuf (both pinned
in pyproject.toml's dev extras), so the output is the same on every machine: `_pb2.py` and
`_pb2_grpc.py` from protoc, `_pb2.pyi` and `_pb2_grpc.pyi` (typed messages, sync and async stubs,
servicer bases) from mypy-protobuf. tests/unit/test_generated_code.py regenerates into a
temporary folder and fails when the committed files differ.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE_DIR = Path("rowcast") / "v1"
HEADER = '"""Generated from protos/rowcast/v1 by scripts/gen_protos.py. Do not edit."""\n'
PLUGINS = ("protoc-gen-mypy", "protoc-gen-mypy_grpc")


def plugin_path(name: str) -> str:
    """The mypy-protobuf plugin installed beside this Python (the pinned one), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the dev extras (mypy-protobuf)")
    return found


def generate(out_root: Path) -> Path:
    """Write the generated package for rowcast.v1 under out_root; return its folder."""
    target = out_root / PACKAGE_DIR
    with tempfile.TemporaryDirectory() as tmp:
        sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / PACKAGE_DIR).glob("*.proto"))
        well_known = str(resources.files("grpc_tools") / "_proto")
        args = [
            "protoc",
            f"-I{PROTOS}",
            f"-I{well_known}",
            *(f"--plugin={name}={plugin_path(name)}" for name in PLUGINS),
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            # quiet: no "Writing mypy to ..." line on stderr for every file.
            f"--mypy_out=quiet:{tmp}",
            f"--mypy_grpc_out=quiet:{tmp}",
            *sources,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(Path(tmp) / PACKAGE_DIR, target)
    (target / "__init__.py").write_text(HEADER)
    (target / "py.typed").write_text("")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "gen" / "python", help="output root")
    ns = parser.parse_args(argv)
    print(f"generated {generate(ns.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
