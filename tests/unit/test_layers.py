"""The import graph of the hand-written packages runs one way: no upward import, no cycle, and
no module of the server package imports the client, the CLI or the developer tooling."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "rowcast": ROOT / "services" / "rowcast",
    "rowcast_cli": ROOT / "services" / "rowcast_cli",
    "rowcast_client": ROOT / "clients" / "python" / "rowcast_client",
    "rowcast_dev": ROOT / "tools" / "rowcast_dev",
    "rowcast_bench": ROOT / "bench" / "rowcast_bench",
}

#: Layers from the bottom up: a module may import its own layer's package or any lower layer,
#: never a higher one, and never a sibling package of its own layer (the three servicers do
#: not import each other). The longest matching prefix decides a module's layer.
LAYERS: list[list[str]] = [
    ["rowcast.v1"],  # generated contracts
    ["rowcast.errors", "rowcast.config", "rowcast.deadlines", "rowcast.aio"],
    ["rowcast.telemetry"],  # metrics, traces, logs: built from the settings, below everything
    ["rowcast.telemetry"],  # metrics, traces, logs: built from the settings (rowcast.config)
    ["rowcast.security"],  # identities, roles and their policy, tokens, TLS files
    ["rowcast.core"],  # signature and binning, byte layouts, plain records, rate limiting
    ["rowcast.store", "rowcast.spool"],  # HBase (and ZooKeeper) adapters; the audit spool
    ["rowcast.propagation"],  # how a route change reaches the prediction servers
    ["rowcast.jobs"],  # data sets, train, materialise, publish, retrain
    [
        "rowcast.convert",
        "rowcast.grpc_errors",
        "rowcast.paging",
        "rowcast.server",
    ],  # gRPC edge
    ["rowcast.security.interceptor"],  # authenticates and authorizes every call
    ["rowcast.security.runtime"],  # a server's TLS, auth and revocation list, from settings
    ["rowcast.prediction", "rowcast.audit", "rowcast.registry"],  # the three servicers
    ["rowcast.apps"],  # assembles each service's process
    ["rowcast_client"],  # the client: may import only rowcast.v1
    ["rowcast_cli"],  # the `rowcast` command: the server's jobs and the client
    ["rowcast_dev"],  # standalone HBase provisioning, the suite runner, chaos runs
    ["rowcast_bench"],  # the benchmark harness (runs on rowcast_dev's HBase)
    ["rowcast_dev.cli"],  # the commands rowcast_dev adds to `rowcast`
]
#: The client distribution ships only rowcast_client and rowcast.v1.
CLIENT_MAY_IMPORT = ("rowcast.v1", "rowcast_client")


def _unit(module: str) -> tuple[int, str]:
    """(layer index, package prefix) of a first-party module."""
    best: tuple[int, str] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[1])
            ):
                best = (index, prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/unit/test_layers.py: add it")
    return best


def _modules() -> Iterator[tuple[str, Path]]:
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def _first_party(name: str) -> bool:
    return name.split(".")[0] in SOURCES


def imports_of(module: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, at module level) of every first-party import in a file."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        names: list[str] = []
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            if node.level:  # relative: resolve against the module's package
                base = module.split(".")[: -node.level]
                names = [".".join([*base, node.module] if node.module else base)]
            elif node.module:
                names = [node.module]
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if _first_party(name):
                yield name, node.lineno, id(node) in top_level


def _known(name: str, modules: set[str]) -> str | None:
    """The module an import name refers to (`from a import b` may name module a.b)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


MODULES = dict(_modules())


def test_every_module_has_a_layer() -> None:
    """Every hand-written module sits in exactly one layer of the table above."""
    for module in MODULES:
        _unit(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_or_sideways_import(module: str) -> None:
    """A module imports only its own package and lower layers."""
    layer, package = _unit(module)
    bad = []
    for name, line, _ in imports_of(module, MODULES[module]):
        if name.startswith("rowcast.v1") and not module.startswith("rowcast_client"):
            continue  # generated contracts: the bottom layer, open to everyone
        target = _known(name, set(MODULES))
        if target is None:
            continue
        other_layer, other_package = _unit(target)
        if other_layer > layer or (other_layer == layer and other_package != package):
            bad.append(f"line {line}: {name} ({other_package}, layer {other_layer})")
    assert not bad, f"{module} ({package}, layer {layer}) imports upward or sideways: {bad}"


def test_the_server_package_never_imports_the_client_cli_or_tooling() -> None:
    """No module of rowcast (the server package) imports rowcast_client, rowcast_cli,
    rowcast_dev or rowcast_bench, even inside a function."""
    bad = [
        f"{module}:{line} imports {name}"
        for module, path in MODULES.items()
        if module.split(".")[0] == "rowcast"
        for name, line, _ in imports_of(module, path)
        if name.split(".")[0] != "rowcast"
    ]
    assert not bad, bad


def test_the_client_imports_only_itself_and_the_contracts() -> None:
    """rowcast_client (its own distribution) imports only rowcast_client and rowcast.v1."""
    bad = [
        f"{module}:{line} imports {name}"
        for module, path in MODULES.items()
        if module.startswith("rowcast_client")
        for name, line, _ in imports_of(module, path)
        if not name.startswith(CLIENT_MAY_IMPORT)
    ]
    assert not bad, bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph (module -> modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_no_import_cycle() -> None:
    """Module-level imports form no cycle."""
    known = set(MODULES)
    graph = {
        module: {
            target
            for name, _, top in imports_of(module, path)
            if top and (target := _known(name, known)) is not None and target != module
        }
        for module, path in MODULES.items()
    }
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    """The cycle check itself can fail: a -> b -> c -> a is found."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: a store module importing a servicer is reported."""
    source = tmp_path / "bad.py"
    source.write_text("from rowcast.registry.servicer import ModelServicer\n")
    names = [name for name, _, _ in imports_of("rowcast.store.bad", source)]
    target = _known(names[0], set(MODULES))
    assert target is not None
    assert _unit(target)[0] > _unit("rowcast.store.bad")[0]
