"""`rowcast datasets ...`: the data sets models are trained and evaluated on.

A data set you bring is stored in HBase (rowcast:datasets) by this process, as `rowcast
publish` writes its versions: it talks to HBase directly (ROWCAST_HBASE_* settings), not
through a service, so no RPC was added for it. The ModelService reads stored data sets by name
wherever one is taken (`models create-version --train`, `--evaluation-dataset`,
`models retrain`, `publish`). Exit codes as in `rowcast_cli.admin_cmd`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from rowcast.config import Settings
from rowcast.core.records import OutputKind
from rowcast.errors import FailedPrecondition
from rowcast.jobs import dataset as datasets
from rowcast.store.admin import DDL_TIMEOUT_S, TableAdmin
from rowcast.store.client import HBaseClient
from rowcast.store.datasets import DatasetRecord
from rowcast.store.registry import Registry
from rowcast.store.schema import ensure_schema
from rowcast_cli.admin_cmd import echo_json, json_option, reports_errors

#: Writing a chunk of up to 4 MiB, or reading the registry to check a removal.
CALL_TIMEOUT_S = 60.0

KINDS = {"binary": OutputKind.PROBABILITY, "regression": OutputKind.REGRESSION}


@click.group("datasets")
def datasets_group() -> None:
    """Data sets you bring (CSV or Parquet, stored in HBase), and the shipped ones."""


def _registry() -> tuple[Registry, HBaseClient]:
    settings = Settings.from_env()
    ensure_schema(TableAdmin(settings.hbase), timeout_s=DDL_TIMEOUT_S)
    client = HBaseClient(settings.hbase)
    return Registry.over(client), client


@datasets_group.command("add")
@click.argument("name")
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A .csv (with a header row) or .parquet file, at most 256 MiB.",
)
@click.option("--target", required=True, help="The column a model learns to predict.")
@click.option(
    "--kind",
    type=click.Choice(sorted(KINDS)),
    default=None,
    help="binary (target 0/1 or true/false: a probability model) or regression (a number). "
    "Default: binary when the target holds only 0 and 1.",
)
@click.option(
    "--heldout-fraction",
    type=float,
    default=datasets.HELDOUT_FRACTION,
    show_default=True,
    help="Share of rows held out (never trained on) to measure every version.",
)
@click.option(
    "--seed",
    type=int,
    default=datasets.SPLIT_SEED,
    show_default=True,
    help="Seed of the held-out draw (stratified by a binary target); stored, so it is fixed.",
)
@json_option
@reports_errors
def add(
    name: str,
    path: Path,
    target: str,
    kind: str | None,
    heldout_fraction: float,
    seed: int,
    as_json: bool,
) -> None:
    """Store the data set NAME from a file: its rows (as Parquet, with their sha256), its
    schema (per column: numeric with min/max, or categorical with its values; units are not
    inferred), its target and a fixed held-out split. Numeric columns become numeric
    features, any other column categorical. Refused: missing values, a one-valued column, a
    categorical column of more than 1,000 values, a name already taken (remove it first)."""
    frame = datasets.read_file(path)
    ds, content, info = datasets.prepare(
        name, frame, target, KINDS[kind] if kind else None, heldout_fraction, seed
    )
    info = {**info, "file": path.name}
    registry, client = _registry()
    try:
        record = asyncio.run(registry.datasets.add(name, content, info, timeout_s=CALL_TIMEOUT_S))
    finally:
        client.close()
    if as_json:
        echo_json(record_dict(record))
        return
    split = info["split"]
    click.echo(
        f"stored data set {name}: {len(ds.frame):,} rows, {len(ds.features)} feature columns "
        f"({len(ds.numeric)} numeric, {len(ds.categorical)} categorical), target {target!r} "
        f"({ds.kind.value}); held out {split['heldout_rows']:,} rows (seed {seed}); "
        f"{record.size_bytes:,} bytes, sha256 {record.sha256[:16]}"
    )
    echo_columns(info)


@datasets_group.command("list")
@json_option
@reports_errors
def list_datasets(as_json: bool) -> None:
    """List the stored data sets and the shipped ones."""
    registry, client = _registry()
    try:
        records = asyncio.run(registry.datasets.list(timeout_s=CALL_TIMEOUT_S))
    finally:
        client.close()
    if as_json:
        echo_json({"shipped": list(datasets.NAMES), "stored": [record_dict(r) for r in records]})
        return
    table = Table("data set", "rows", "target", "kind", "features")
    for r in records:
        table.add_row(
            r.name,
            f"{r.info['rows']:,}",
            r.info["target"],
            r.info["kind"],
            ", ".join(c["name"] for c in r.info["columns"]),
        )
    for name in datasets.NAMES:
        table.add_row(name, "", "", "", "(shipped)")
    Console().print(table)


@datasets_group.command("get")
@click.argument("name")
@json_option
@reports_errors
def get(name: str, as_json: bool) -> None:
    """Show the stored data set NAME: rows, target, split and every column's type and range."""
    registry, client = _registry()
    try:
        record = asyncio.run(registry.datasets.get(name, timeout_s=CALL_TIMEOUT_S))
    finally:
        client.close()
    if as_json:
        echo_json(record_dict(record))
        return
    info, split = record.info, record.info["split"]
    click.echo(
        f"{record.name}: {info['rows']:,} rows from {info.get('file', '?')}, target "
        f"{info['target']!r} ({info['kind']}), sha256 {record.sha256}"
    )
    click.echo(
        f"  split: {split['train_rows']:,} training rows, {split['heldout_rows']:,} held out "
        f"(fraction {split['heldout_fraction']}, seed {split['seed']}"
        + (", stratified by the target)" if split["stratified"] else ")")
    )
    echo_columns(info)


@datasets_group.command("export")
@click.argument("name")
@click.option(
    "--split",
    type=click.Choice(["train", "heldout", "all"]),
    default="train",
    show_default=True,
    help="Which rows: the training split (train a model elsewhere on these, so that its "
    "held-out fidelity is honest), the held-out rows, or all.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A .csv or .parquet file to write.",
)
@json_option
@reports_errors
def export(name: str, split: str, out: Path, as_json: bool) -> None:
    """Write the rows of data set NAME (stored or shipped), or one side of its fixed split,
    to a file: the rows rowcast trains on and measures with."""
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise click.BadParameter("give a .csv or .parquet file", param_hint="--out")
    registry, client = _registry()
    try:
        ds = datasets.Catalog(registry.datasets).load(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from exc
    finally:
        client.close()
    train, heldout = ds.heldout_split()
    rows = {"train": train, "heldout": heldout, "all": ds.frame}[split]
    if out.suffix.lower() == ".csv":
        rows.to_csv(out, index=False)
    else:
        rows.to_parquet(out, index=False)
    if as_json:
        echo_json({"name": name, "split": split, "rows": len(rows), "file": str(out)})
    else:
        click.echo(f"wrote {len(rows):,} {split} rows of {name} to {out}")


@datasets_group.command("remove")
@click.argument("name")
@click.option(
    "--force", is_flag=True, help="Remove it even when versions name it as their data set."
)
@json_option
@reports_errors
def remove(name: str, force: bool, as_json: bool) -> None:
    """Remove the stored data set NAME. Refused while a version names it as its evaluation
    data set (their fidelity could no longer be measured, nor the model retrained on it)
    unless --force."""
    registry, client = _registry()
    try:
        record = asyncio.run(_remove(registry, name, force))
    finally:
        client.close()
    if as_json:
        echo_json(record_dict(record))
    else:
        click.echo(f"removed data set {name}")


async def _remove(registry: Registry, name: str, force: bool) -> DatasetRecord:
    await registry.datasets.get(name, timeout_s=CALL_TIMEOUT_S)  # NOT_FOUND first
    if not force:
        users = [
            f"{v.model} v{v.version}"
            for m in await registry.models.list_models(timeout_s=CALL_TIMEOUT_S)
            for v in await registry.versions.list_versions(m.name, timeout_s=CALL_TIMEOUT_S)
            if v.evaluation_dataset == name
        ]
        if users:
            raise FailedPrecondition(
                f"data set {name!r} is the data set of {', '.join(users)}; --force removes it"
            )
    return await registry.datasets.remove(name, timeout_s=CALL_TIMEOUT_S)


def record_dict(record: DatasetRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "sha256": record.sha256,
        "size_bytes": record.size_bytes,
        **record.info,
    }


def echo_columns(info: dict[str, Any]) -> None:
    """One line per column: its type and range or values."""
    for c in info["columns"]:
        if c["type"] == "numeric":
            kind = "integer" if c["integer"] else "numeric"
            click.echo(
                f"  {c['name']}: {kind}, {c['min']:g} to {c['max']:g}, "
                f"{c['distinct']:,} distinct values (units: not inferred)"
            )
        else:
            shown = ", ".join(c["values"][:10]) + (" ..." if len(c["values"]) > 10 else "")
            click.echo(f"  {c['name']}: categorical, {len(c['values'])} values: {shown}")
