"""`rowcast publish`: train a version on a data set, flatten it into HBase, activate."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from rowcast.config import Settings
from rowcast.jobs.materialize import Progress as MaterializeProgress
from rowcast.jobs.publish import PublishResult, PublishSpec
from rowcast.jobs.publish import publish as run_publish
from rowcast.jobs.train import TrainParams
from rowcast_cli.admin_cmd import fidelity_text, propagation_text, reports_errors

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def materialise_bar() -> Iterator[MaterializeProgress]:
    """A progress bar of rows materialised (on stderr, gone when done), and its callback."""
    with Progress(
        TextColumn("{task.fields[phase]:<9}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("rows", total=None, phase="starting")

        def progress(done: int, total: int) -> None:
            phase = "verifying" if total and done >= total else "writing"
            bar.update(task, completed=done, total=total, phase=phase)

        yield progress


def training_options(command: F) -> F:
    """The options of a training run, shared by `publish` and `models retrain`."""
    options = [
        click.option("--num-trees", default=200, show_default=True, type=int),
        click.option("--num-leaves", default=15, show_default=True, type=int),
        click.option("--learning-rate", default=0.05, show_default=True, type=float),
        click.option("--seed", default=7, show_default=True, type=int),
        click.option(
            "--creator",
            default="rowcast",
            show_default=True,
            help="Recorded as the version's creator.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def run_with_progress(settings: Settings, spec: PublishSpec) -> PublishResult:
    with materialise_bar() as progress:
        return asyncio.run(run_publish(settings, spec, progress))


@click.command()
@click.option("--model", default="credit_default", show_default=True, help="Model name.")
@click.option(
    "--dataset",
    default="default",
    show_default=True,
    help="The data set: shipped (default: ISLR Default) or stored (rowcast datasets add).",
)
@training_options
@click.option(
    "--balance-bins",
    default=100,
    show_default=True,
    type=int,
    help="Quantile bins of `balance` (only when the model is first registered).",
)
@click.option(
    "--income-bins",
    default=50,
    show_default=True,
    type=int,
    help="Quantile bins of `income` (only when the model is first registered).",
)
@click.option(
    "--activate/--no-activate",
    default=True,
    show_default=True,
    help="Make the new version the one served once it is READY.",
)
@reports_errors
def publish(
    model: str,
    dataset: str,
    num_trees: int,
    num_leaves: int,
    learning_rate: float,
    seed: int,
    balance_bins: int,
    income_bins: int,
    creator: str,
    activate: bool,
) -> None:
    """Train a new LightGBM version, materialise its whole grid into HBase, verify it.

    Registers the model on first use (deriving bins from the training data); later runs reuse
    the registered signature, so every version shares one key layout. Talks to HBase directly
    (ROWCAST_HBASE_* settings); running prediction servers pick up the activation by themselves.
    """
    spec = PublishSpec(
        model=model,
        dataset=dataset,
        params=TrainParams(
            num_trees=num_trees, num_leaves=num_leaves, learning_rate=learning_rate, seed=seed
        ),
        bins={"balance": balance_bins, "income": income_bins},
        creator=creator,
        activate=activate,
    )
    result = run_with_progress(Settings.from_env(), spec)
    v = result.version
    click.echo(
        f"{v.model} v{v.version}: {v.state.value}, {v.row_count:,} rows in {v.table}; "
        f"{fidelity_text(result.version.metrics)}" + ("; ACTIVE" if result.activated else "")
    )
    p = result.propagation
    if p is not None:
        click.echo(propagation_text(p.servers, p.complete, p.lagging, p.waited_s))
