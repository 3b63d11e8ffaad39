"""`rowcast models ...`: every ModelService call, for admins and scripts.

Tables for people, `--json` for scripts, progress bars while materialising; exit codes as in
`rowcast_cli.admin_cmd` (0 ok, 1 any other error such as ALREADY_EXISTS, 2 bad input, 3 not
found, 4 failed precondition, 5 unavailable; 6 a cancelled operation).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import click
from google.rpc import code_pb2
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rowcast.config import Settings
from rowcast.convert import OUTPUT_KIND_TO_PB, signature_to_pb
from rowcast.core.records import OutputKind
from rowcast.core.signature import MAX_BINS, CategoricalFeature, NumericFeature
from rowcast.errors import InvalidArgument
from rowcast.jobs import dataset as datasets
from rowcast.jobs.retrain import RetrainResult, RetrainSpec
from rowcast.jobs.retrain import retrain as run_retrain
from rowcast.jobs.train import TrainParams
from rowcast.store.client import HBaseClient
from rowcast.store.registry import Registry
from rowcast.v1 import model_service_pb2 as model_pb
from rowcast.v1 import resources_pb2 as pb
from rowcast_cli.admin_cmd import (
    as_dict,
    client,
    echo_json,
    fidelity_text,
    json_option,
    propagation_text,
    reports_errors,
)
from rowcast_cli.jobs_cmd import materialise_bar, training_options
from rowcast_client import RowcastClient
from rowcast_client.engines import Engine

#: --actor / --creator: the server records the caller's authenticated identity.
WHO_HELP = (
    "Optional: must equal your token's name (the authenticated identity is recorded); "
    "required with --insecure."
)


@click.group()
def models() -> None:
    """Inspect models and versions; activate a version (ModelService)."""


@models.command("list")
@json_option
@reports_errors
def list_models(as_json: bool) -> None:
    """List registered models and their active versions."""
    with client() as c:
        found = c.list_models()
    if as_json:
        echo_json([as_dict(m) for m in found])
        return
    table = Table("model", "current", "previous", "features", "description")
    for m in found:
        table.add_row(
            m.name,
            str(m.current_version or "-"),
            str(m.previous_version or "-"),
            ", ".join(f.name for f in m.signature.features),
            m.description,
        )
    Console().print(table)


@models.command("versions")
@click.argument("model")
@json_option
@reports_errors
def list_versions(model: str, as_json: bool) -> None:
    """List the versions of MODEL, newest first."""
    with client() as c:
        versions = c.list_versions(model)
        current = c.get_model(model).current_version
    if as_json:
        echo_json([as_dict(v) for v in versions])
        return
    table = Table("version", "state", "rows", "held-out fidelity", "creator", "active")
    for v in versions:
        table.add_row(
            str(v.version),
            state_name(v.state),
            f"{v.row_count:,}",
            fidelity_text(v.metrics),
            v.creator,
            "*" if v.version == current else "",
        )
    Console().print(table)


def state_name(state: pb.VersionState.ValueType) -> str:
    return str(pb.VersionState.Name(state)).removeprefix("VERSION_STATE_")


def describe_model(m: pb.Model) -> list[str]:
    """A model for people: one fact per line."""
    aliases = ", ".join(f"{k}=v{v}" for k, v in sorted(m.aliases.items())) or "none"
    lines = [
        f"{m.name}: current v{m.current_version or '-'}, previous v{m.previous_version or '-'}",
        f"  aliases: {aliases}",
        f"  grid: {m.grid_size:,} cells",
    ]
    lines += [f"  feature {f.name}" for f in m.signature.features]
    if m.description:
        lines.append(f"  description: {m.description}")
    return lines


def describe_version(v: pb.ModelVersion) -> list[str]:
    """A version for people: one fact per line."""
    lines = [
        f"{v.model} v{v.version}: {state_name(v.state)}, {v.row_count:,} rows in {v.table}",
        f"  creator: {v.creator}",
        f"  rows written: {v.rows_written:,}",
        f"  evaluation data set: {v.evaluation_dataset or 'none'}",
    ]
    # Whole numbers in full (a seed must be copied exactly to reproduce a failed check).
    lines += [
        f"  {k}: {int(val) if val.is_integer() else f'{val:g}'}"
        for k, val in sorted(v.metrics.items())
    ]
    if v.failure_reason:
        lines.append(f"  failure: {v.failure_reason}")
    return lines


@models.command("get")
@click.argument("model")
@click.argument("version", type=int, required=False)
@json_option
@reports_errors
def get(model: str, version: int | None, as_json: bool) -> None:
    """Show MODEL (or one VERSION of it): aliases, grid and features, or a version's state,
    rows and metrics; --json prints the Model or ModelVersion message."""
    with client() as c:
        if version is not None:
            v = c.get_version(model, version)
            found, lines = as_dict(v), describe_version(v)
        else:
            m = c.get_model(model)
            found, lines = as_dict(m), describe_model(m)
    if as_json:
        echo_json(found)
    else:
        click.echo("\n".join(lines))


@models.command("activate")
@click.argument("model")
@click.argument("version", type=int)
@click.option(
    "--actor",
    default="",
    help=WHO_HELP,
)
@click.option("--reason", default="", help="Why (recorded).")
@json_option
@reports_errors
def activate(model: str, version: int, actor: str, reason: str, as_json: bool) -> None:
    """Make VERSION of MODEL the one served; running servers switch without a restart.

    Returns once every prediction server registered in ZooKeeper serves VERSION (at most
    ROWCAST_PROPAGATION_TIMEOUT_S on the ModelService, 2 s by default), and says which
    servers lagged if any: from then on every request is answered with VERSION."""
    with client() as c:
        response = c.activate_version(model, version, actor=actor, reason=reason)
    echo_switch(response.model, response.propagation, as_json)


@models.command("register")
@click.argument("spec_or_name")
@click.option(
    "--from-dataset",
    "dataset",
    help="Derive the signature from this data set (stored or shipped); SPEC_OR_NAME is then "
    "the model's name.",
)
@click.option(
    "--features",
    default="",
    help="With --from-dataset: the feature columns, comma-separated, in key order "
    "(default: every column but the target).",
)
@click.option(
    "--bins",
    type=click.IntRange(min=2, max=MAX_BINS),
    default=datasets.DEFAULT_BINS,
    show_default=True,
    help="With --from-dataset: most bins per numeric feature (quantiles of the training rows; "
    "fewer when a column has fewer distinct values).",
)
@click.option(
    "--max-grid-rows",
    type=click.IntRange(min=1),
    default=None,
    help="With --from-dataset: refuse a signature whose grid has more cells "
    "(default: ROWCAST_MAX_GRID_ROWS, 50,000,000).",
)
@click.option("--description", default="", help="With --from-dataset: the model's description.")
@click.option(
    "--dry-run", is_flag=True, help="With --from-dataset: print the signature, register nothing."
)
@json_option
@reports_errors
def register(
    spec_or_name: str,
    dataset: str | None,
    features: str,
    bins: int,
    max_grid_rows: int | None,
    description: str,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Register a model from SPEC, a JSON file in the form of the Model message (name,
    description, signature, output; see docs/models.md), or derive its signature with
    --from-dataset: NAME's bins from the data set's training rows (quantiles, each bin's
    representative the median of its values, bounds the values seen), vocabularies from its
    categories, the output kind from its target. The grid size is printed before anything is
    written. Reads the data set from HBase (ROWCAST_HBASE_*) and registers through the
    ModelService."""
    from google.protobuf.json_format import Parse, ParseError

    if dataset is None:
        spec = Path(spec_or_name)
        if not spec.is_file():
            raise click.BadParameter(f"{spec} is not a file", param_hint="SPEC")
        try:
            model = Parse(spec.read_text(), pb.Model())
        except ParseError as exc:
            raise click.BadParameter(str(exc), param_hint="SPEC") from exc
    else:
        model = derived_model(
            spec_or_name, dataset, features, bins, max_grid_rows, description, as_json
        )
        if dry_run:
            if as_json:
                echo_json(as_dict(model))
            return
    with client() as c:
        m = c.register_model(model)
    if as_json:
        echo_json(as_dict(m))
    else:
        click.echo(
            f"registered {m.name}: {len(m.signature.features)} features, grid {m.grid_size:,}"
        )


def derived_model(
    name: str,
    dataset: str,
    features: str,
    bins: int,
    max_grid_rows: int | None,
    description: str,
    quiet: bool,
) -> pb.Model:
    """The Model message of a signature derived from a data set; its grid printed first
    (unless `quiet`), and refused (exit 2) above `max_grid_rows`."""
    settings = Settings.from_env()
    hbase = HBaseClient(settings.hbase)
    try:
        ds = datasets.Catalog(Registry.over(hbase).datasets).load(dataset)
    except ValueError as exc:
        raise InvalidArgument.field("dataset", str(exc)) from exc
    finally:
        hbase.close()
    chosen = [f.strip() for f in features.split(",") if f.strip()] or list(ds.features)
    signature = datasets.derive_signature(ds, chosen, bins)
    limit = max_grid_rows or settings.max_grid_rows
    if not quiet:
        for f in signature.features:
            click.echo(f"  {f.name}: {feature_text(f)}")
        click.echo(
            f"grid: {' x '.join(str(c) for c in signature.cardinalities)} = "
            f"{signature.grid_size:,} cells (limit {limit:,})"
        )
    if signature.grid_size > limit:
        raise InvalidArgument.field(
            "signature",
            f"grid has {signature.grid_size:,} cells, more than --max-grid-rows {limit:,}: "
            "fewer --bins or fewer --features",
        )
    kind = ds.kind
    return pb.Model(
        name=name,
        description=description or f"{ds.target} from data set {ds.name}",
        signature=signature_to_pb(signature),
        output=pb.OutputSpec(
            kind=OUTPUT_KIND_TO_PB[kind],
            description=f"probability that {ds.target} is 1"
            if kind is OutputKind.PROBABILITY
            else f"expected {ds.target}",
        ),
    )


def feature_text(f: NumericFeature | CategoricalFeature) -> str:
    """A derived feature for people: its bins and range, or its vocabulary."""
    if isinstance(f, CategoricalFeature):
        return f"categorical, {f.cardinality} values: {', '.join(f.vocabulary[:10])}"
    lower = "-inf" if f.lower is None else f"{f.lower:g}"
    upper = "+inf" if f.upper is None else f"{f.upper:g}"
    return (
        f"numeric, {f.cardinality} bins over {lower} to {upper} "
        f"(edges {f.edges[0]:g} ... {f.edges[-1]:g})"
    )


@models.command("create-version")
@click.argument("model")
@click.option(
    "--creator",
    default="",
    help=WHO_HELP,
)
@click.option(
    "--model-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A LightGBM text model (Booster.save_model) whose features are the signature's.",
)
@click.option(
    "--train",
    "dataset",
    help="Train on this data set instead: one you stored (rowcast datasets add), or a shipped "
    "one: default (ISLR Default, a probability) or credit_balance (ISLR Credit, a "
    "regression); it must fit the signature (names, kinds, ranges) and the output kind.",
)
@click.option("--num-trees", type=int, default=0, help="With --train (default 200).")
@click.option("--num-leaves", type=int, default=0, help="With --train (default 15).")
@click.option("--learning-rate", type=float, default=0.0, help="With --train (default 0.05).")
@click.option("--seed", type=int, default=0, help="With --train (default 7).")
@click.option(
    "--evaluation-dataset",
    default="",
    help="With --model-file: a data set (stored or shipped) whose held-out split measures "
    "the flattening fidelity at materialisation (a trained version uses its own).",
)
@json_option
@reports_errors
def create_version(
    model: str,
    creator: str,
    model_file: Path | None,
    dataset: str | None,
    num_trees: int,
    num_leaves: int,
    learning_rate: float,
    seed: int,
    evaluation_dataset: str,
    as_json: bool,
) -> None:
    """Create a new version of MODEL from --model-file or by --train (it starts REGISTERED)."""
    if (model_file is None) == (dataset is None):
        raise click.UsageError("give exactly one of --model-file or --train")
    with client() as c:
        if model_file is not None:
            v = c.create_version(
                model,
                creator=creator,
                lightgbm_model=model_file.read_bytes(),
                evaluation_dataset=evaluation_dataset,
                timeout=300,
            )
        else:
            assert dataset is not None  # the usage check above
            spec = model_pb.TrainingSpec(
                dataset=dataset,
                num_trees=num_trees,
                num_leaves=num_leaves,
                learning_rate=learning_rate,
                seed=seed,
            )
            v = c.create_version(model, creator=creator, training=spec, timeout=600)
    if as_json:
        echo_json(as_dict(v))
    else:
        metrics = ", ".join(
            f"{k} {int(val):,}" if val.is_integer() else f"{k} {val:.4f}"
            for k, val in sorted(v.metrics.items())
        )
        click.echo(f"{v.model} v{v.version}: REGISTERED {metrics}")


def follow(c: RowcastClient, name: str, as_json: bool) -> model_pb.Operation:
    """Watch an operation to its end, with a progress bar (silently with --json: the caller
    prints the finished operation as one JSON document)."""
    last = c.get_operation(name)
    if as_json:
        for op in c.watch_operation(name):
            last = op
        return last
    click.echo(name, err=True)
    # Fits 80 columns: phase, a short bar, rows done/total, rate, time left.
    with Progress(
        TextColumn("{task.fields[phase]:<9}"),
        BarColumn(bar_width=16),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7,.0f}/s"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(
            "rows", total=last.progress.total_rows or None, rate=0.0, phase=phase_of(last)
        )
        for op in c.watch_operation(name):
            bar.update(
                task,
                completed=op.progress.rows_written,
                total=op.progress.total_rows,
                rate=op.progress.rows_per_second,
                phase=phase_of(op),
            )
            last = op
    return last


def phase_of(op: model_pb.Operation) -> str:
    """What a materialisation is doing, from its progress: starting (no row yet), writing,
    verifying (every row written, the gate running), done."""
    if op.done:
        return "done"
    written, total = op.progress.rows_written, op.progress.total_rows
    if not written:
        return "starting"
    return "verifying" if total and written >= total else "writing"


#: Exit code of a finished operation by its google.rpc code: cancelled 6; HBase unavailable or
#: the runner stopped reporting (its ModelService died) 5, both resumable; anything else 4.
EXIT_BY_OPERATION_CODE = {code_pb2.CANCELLED: 6, code_pb2.UNAVAILABLE: 5, code_pb2.ABORTED: 5}


def finish(op: model_pb.Operation, as_json: bool = False) -> None:
    """Report a finished operation (one JSON document with --json); a failed one exits with
    its code."""
    if as_json:
        echo_json(as_dict(op))
    if op.error.code:
        click.echo(f"{op.name}: {op.error.message}", err=True)
        raise SystemExit(EXIT_BY_OPERATION_CODE.get(op.error.code, 4))
    if as_json:
        return
    v = op.version
    click.echo(
        f"{v.model} v{v.version}: {pb.VersionState.Name(v.state).removeprefix('VERSION_STATE_')}"
        f", {v.row_count:,} rows"
    )


@models.command("materialize")
@click.argument("model")
@click.argument("version", type=int)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0.0),
    default=0.0,
    help="Rows per second at most, to go slower than the server's limit "
    "(ROWCAST_MATERIALIZE_ROWS_PER_SECOND, default 5000); it cannot raise it: a value above "
    "it exits 2. 0: the server's limit.",
)
@click.option(
    "--engine",
    type=click.Choice(["builtin", "spark"]),
    default="builtin",
    show_default=True,
    help="builtin: the ModelService's workers through the Thrift gateway (resumable); spark: "
    "a Spark application writes HFiles and bulk-loads them (starts over; no rate limit).",
)
@click.option(
    "--spark-master",
    default="",
    help="The Spark master for --engine spark: local[2], spark://host:7077, yarn "
    "(default: local[2,2] on the ModelService's machine).",
)
@click.option("--no-wait", is_flag=True, help="Print the operation name and return at once.")
@json_option
@reports_errors
def materialize(
    model: str,
    version: int,
    rate_limit: float,
    engine: Engine,
    spark_master: str,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Write VERSION's table (or resume an interrupted write) and verify it; shows progress.

    Exit 0 when the version is READY, 4 when it FAILED, 5 when HBase became unavailable or
    the ModelService running it stopped reporting (the version stays MATERIALIZING: run this
    again to resume), 6 when cancelled."""
    if spark_master and engine != "spark":
        raise click.BadParameter("needs --engine spark", param_hint="--spark-master")
    with client() as c:
        op = c.materialize_version(
            model,
            version,
            rows_per_second_limit=rate_limit,
            engine=engine,
            spark_master=spark_master,
        )
        if no_wait:
            click.echo(json.dumps(as_dict(op)) if as_json else op.name)
            return
        finish(follow(c, op.name, as_json), as_json)


@models.command("operation")
@click.argument("name")
@click.option("--watch", is_flag=True, help="Follow it to the end.")
@click.option("--cancel", is_flag=True, help="Ask it to stop (resumable).")
@json_option
@reports_errors
def operation(name: str, watch: bool, cancel: bool, as_json: bool) -> None:
    """Show, --watch or --cancel the operation NAME (operations/{id})."""
    with client() as c:
        if cancel:
            op = c.cancel_operation(name)
        elif watch:
            finish(follow(c, name, as_json), as_json)
            return
        else:
            op = c.get_operation(name)
    if as_json:
        echo_json(as_dict(op))
    else:
        p = op.progress
        click.echo(
            f"{op.name}: {'done' if op.done else 'running'} {p.rows_written:,}/{p.total_rows:,}"
            f" rows, {p.rows_per_second:,.0f} rows/s"
            + (f", error: {op.error.message}" if op.error.code else "")
        )


@models.command("rollback")
@click.argument("model")
@click.option(
    "--actor",
    default="",
    help=WHO_HELP,
)
@click.option("--reason", default="", help="Why (recorded).")
@json_option
@reports_errors
def rollback(model: str, actor: str, reason: str, as_json: bool) -> None:
    """Serve MODEL's previous version again; running servers follow without a restart.

    Returns once every registered prediction server serves it, as `activate` does."""
    with client() as c:
        response = c.rollback_model(model, actor=actor, reason=reason)
    echo_switch(response.model, response.propagation, as_json)


def echo_switch(m: pb.Model, propagation: model_pb.Propagation, as_json: bool) -> None:
    """The model after a switch, and how far the switch had reached the prediction servers."""
    if as_json:
        echo_json({**as_dict(m), "propagation": as_dict(propagation)})
        return
    click.echo(f"{m.name}: current v{m.current_version}, previous v{m.previous_version or '-'}")
    click.echo(
        propagation_text(
            propagation.servers,
            propagation.complete,
            list(propagation.lagging_servers),
            propagation.wait.ToTimedelta().total_seconds(),
        )
    )


@models.command("retire")
@click.argument("model")
@click.argument("version", type=int)
@click.option(
    "--actor",
    default="",
    help=WHO_HELP,
)
@json_option
@reports_errors
def retire(model: str, version: int, actor: str, as_json: bool) -> None:
    """Retire VERSION of MODEL and drop its table (refused for the active version)."""
    with client() as c:
        v = c.retire_version(model, version, actor=actor)
    if as_json:
        echo_json(as_dict(v))
    else:
        dropped = "dropped" if v.table_dropped else "not dropped yet"
        click.echo(
            f"{v.model} v{v.version}: RETIRED by {v.retired_by or '?'} at "
            f"{v.retire_time.ToDatetime().isoformat(timespec='seconds')}, table {v.table} {dropped}"
        )


@models.command("delete")
@click.argument("model")
@click.option("--actor", default="", help=WHO_HELP)
@click.option("--reason", default="", help="Why (recorded in the history).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@reports_errors
def delete(model: str, actor: str, reason: str, yes: bool, as_json: bool) -> None:
    """Delete MODEL, which must serve nothing (no current version, no user alias): its versions
    are retired and their tables dropped; its records and history stay (`models activations`),
    and its version numbers are never reused."""
    if not yes and not as_json:
        click.confirm(f"delete model {model!r} and drop every version table?", abort=True)
    with client() as c:
        retired = c.delete_model(model, actor=actor, reason=reason)
    if as_json:
        echo_json({"model": model, "retired_versions": retired})
    else:
        shown = ", ".join(f"v{v}" for v in retired) or "none"
        click.echo(f"deleted {model}: retired {shown} (tables dropped); history kept")


@models.command("activations")
@click.argument("model")
@json_option
@reports_errors
def activations(model: str, as_json: bool) -> None:
    """MODEL's history, newest first: activations, rollbacks, retirements, its deletion."""
    with client() as c:
        found = c.list_activations(model)
    if as_json:
        echo_json([as_dict(a) for a in found])
        return
    table = Table("when", "what", "from", "to", "actor", "reason")
    for a in found:
        table.add_row(
            a.activate_time.ToDatetime().isoformat(timespec="seconds"),
            model_pb.HistoryKind.Name(a.kind).removeprefix("HISTORY_KIND_").lower(),
            str(a.from_version or "-"),
            str(a.to_version or "-"),
            a.actor,
            a.reason,
        )
    Console().print(table)


@models.command("alias")
@click.argument("model")
@click.argument("alias")
@click.argument("version", type=int, required=False)
@click.option("--delete", is_flag=True, help="Remove the alias.")
@json_option
@reports_errors
def alias(model: str, alias: str, version: int | None, delete: bool, as_json: bool) -> None:
    """Point ALIAS (e.g. canary) of MODEL at VERSION, or --delete it; prints the model's
    aliases (--json: the Model message)."""
    if delete == (version is not None):
        raise click.UsageError("give VERSION, or --delete (not both)")
    with client() as c:
        m = c.delete_alias(model, alias) if version is None else c.set_alias(model, alias, version)
    if as_json:
        echo_json(as_dict(m))
    else:
        click.echo(", ".join(f"{k}=v{v}" for k, v in sorted(m.aliases.items())) or "no aliases")


@models.command("diff")
@click.argument("model")
@click.argument("version_a", type=int)
@click.argument("version_b", type=int)
@click.option("--tolerance", type=float, default=0.0, show_default=True)
@json_option
@reports_errors
def diff(model: str, version_a: int, version_b: int, tolerance: float, as_json: bool) -> None:
    """Compare two READY versions of MODEL over the whole grid."""
    with client() as c:
        d = c.diff_versions(model, version_a, version_b, tolerance=tolerance, timeout=600)
    if as_json:
        echo_json(as_dict(d))
        return
    share = d.changed_cells / d.cells if d.cells else 0.0
    click.echo(
        f"{d.changed_cells:,} of {d.cells:,} cells changed ({share:.1%}); "
        f"max |delta| {d.max_abs_delta:.4f}, mean |delta| {d.mean_abs_delta:.4f}"
    )
    hist = Table("delta from", "to", "cells")
    for h in d.histogram:
        hist.add_row(f"{h.lower:+.6f}", f"{h.upper:+.6f}", f"{h.count:,}")
    Console().print(hist)
    feats = Table("feature", "concentration (Gini)", "busiest bin")
    for f in d.features:
        busiest = max(range(len(f.changed_cells_per_bin)), key=f.changed_cells_per_bin.__getitem__)
        feats.add_row(f.feature, f"{f.concentration:.3f}", str(busiest))
    Console().print(feats)


@models.command("retrain")
@click.argument("model")
@click.option(
    "--dataset",
    default=None,
    help="The data set to train on (stored or shipped). Default: the active version's own "
    "(the one it was trained on, or uploaded with as --evaluation-dataset).",
)
@training_options
@json_option
@reports_errors
def retrain(
    model: str,
    dataset: str | None,
    num_trees: int,
    num_leaves: int,
    learning_rate: float,
    seed: int,
    creator: str,
    as_json: bool,
) -> None:
    """Train a new version of MODEL on its data set plus approved augmentations.

    Reads every decision of MODEL from the audit; each one whose latest review is an approved
    augmentation becomes training rows (docs/audit.md, "Retrain"). The new version is
    materialised and verified, then compared with the active version on the same held-out
    rows: AUC (probability models) or RMSE (regressions) of the raw model and of table
    lookups. It is left READY, not active; activate it with `rowcast models activate`. Runs
    in this process against HBase (ROWCAST_HBASE_*), like `rowcast publish`. Exit 0 when
    READY; 4 when it failed verification, or when the model does not fit the data set
    (columns, kinds, ranges); 2 for bad input (an unknown data set).
    """
    spec = RetrainSpec(
        model=model,
        dataset=dataset,
        params=TrainParams(
            num_trees=num_trees, num_leaves=num_leaves, learning_rate=learning_rate, seed=seed
        ),
        creator=creator,
    )
    with materialise_bar() as progress:
        result = asyncio.run(run_retrain(Settings.from_env(), spec, progress))
    report = retrain_report(result)
    if as_json:
        echo_json(report)
        return
    v = result.version
    click.echo(
        f"{v.model} v{v.version}: {v.state.value}, {v.row_count:,} rows in {v.table}; trained on "
        f"{result.original_rows:,} original rows + {result.augmentations_used:,} approved "
        f"augmentations ({result.decisions_scanned:,} decisions read)"
    )
    for reason, n in sorted(result.skipped.items()):
        click.echo(f"  left out {n:,}: {reason}")
    table = Table(f"on {result.heldout_rows:,} held-out rows", "active", "retrained", "change")
    for label, a, b in (
        (f"{result.metric.upper()} raw model", result.active.raw, result.candidate.raw),
        (f"{result.metric.upper()} table lookups", result.active.table, result.candidate.table),
    ):
        table.add_row(label, f"{a:.4f}", f"{b:.4f}", f"{b - a:+.4f}")
    table.add_row("version", str(result.active.version), str(result.candidate.version), "")
    Console().print(table)
    click.echo(f"ready to activate: rowcast models activate {v.model} {v.version}")


def retrain_report(result: RetrainResult) -> dict[str, object]:
    """The retrain outcome as JSON for scripts."""
    return {
        "model": result.version.model,
        "version": result.version.version,
        "state": result.version.state.value,
        "row_count": result.version.row_count,
        "metric": result.metric,
        "heldout_rows": result.heldout_rows,
        "original_rows": result.original_rows,
        "decisions_scanned": result.decisions_scanned,
        "augmentations_used": result.augmentations_used,
        "skipped": result.skipped,
        "active": dataclasses.asdict(result.active),
        "retrained": dataclasses.asdict(result.candidate),
    }
