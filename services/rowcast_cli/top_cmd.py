"""`rowcast top`: a live terminal view of a running suite, read from its /metrics endpoints.

Every refresh scrapes each target, and a frame shows what happened between the last two
scrapes: rates and latency percentiles come from counter and histogram *increases*, as
Prometheus's rate() and histogram_quantile() compute them, so they describe the last interval,
not the time since the process started. The pure steps (parse -> Snapshot -> Window -> Frame)
are kept apart from scraping and drawing, so tests feed them canned /metrics text.
"""

from __future__ import annotations

import http.client
import math
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import click
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from rowcast.config import Settings

LabelSet = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, LabelSet]
Labels = Mapping[str, str]

#: gRPC services every server also runs (health, reflection): not rowcast's traffic.
_INFRA_PREFIX = "grpc."


@dataclass(frozen=True)
class Target:
    """One /metrics endpoint and the name it is shown under."""

    name: str
    url: str


def target_from_option(text: str) -> Target:
    """A `--metrics` value: `[NAME=]URL`, where URL may be bare `host:port` (then
    http://host:port/metrics); the name defaults to host:port."""
    name, sep, url = text.partition("=")
    if not sep or "/" in name or ":" in name:
        name, url = "", text
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path="/metrics")
    return Target(name or parts.netloc, urllib.parse.urlunsplit(parts))


def parse(text: str) -> dict[SeriesKey, float]:
    """Every sample of a /metrics page (Prometheus text format) by name and label set."""
    values: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


@dataclass(frozen=True)
class Snapshot:
    """One scrape of one target: its samples at a monotonic time, or why it failed."""

    target: Target
    at: float
    values: Mapping[SeriesKey, float] = field(default_factory=dict)
    error: str | None = None

    def series(self, name: str) -> list[tuple[Labels, float]]:
        """Current values of every series of the sample `name`."""
        return [(dict(ls), v) for (n, ls), v in self.values.items() if n == name]

    def total(self, name: str) -> float | None:
        """Sum over the series of `name`; None if the target exports none."""
        found = self.series(name)
        return sum(v for _, v in found) if found else None


@dataclass(frozen=True)
class Window:
    """What one target did between two scrapes (no rates before the second one)."""

    previous: Snapshot | None
    current: Snapshot

    @property
    def seconds(self) -> float:
        if self.previous is None or self.previous.error is not None:
            return 0.0
        return self.current.at - self.previous.at

    def increases(self, name: str) -> list[tuple[Labels, float]]:
        """Each counter series' increase over the window; a counter that went down was
        reset (the process restarted), so all of its current value is new."""
        if self.seconds <= 0:
            return []
        assert self.previous is not None
        before = self.previous.values
        out: list[tuple[Labels, float]] = []
        for (n, ls), now in self.current.values.items():
            if n == name:
                then = before.get((n, ls), 0.0)
                out.append((dict(ls), now - then if now >= then else now))
        return out

    def increase(self, name: str, **match: str) -> float | None:
        """Summed increase of the series of `name` whose labels include `match`."""
        if self.seconds <= 0:
            return None
        return sum(
            v
            for labels, v in self.increases(name)
            if all(labels.get(k) == want for k, want in match.items())
        )


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus's estimate of the q-quantile from cumulative (upper bound, count) buckets,
    interpolating linearly inside a bucket; None without observations or a +Inf bucket."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][0] != math.inf or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank and count > lower_count:
            if bound == math.inf:
                return lower_bound  # the highest finite bound, as Prometheus answers
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


# ----------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class TargetRow:
    """One scraped process: reachable or not, calls in flight, routes generation."""

    name: str
    url: str
    error: str | None
    in_flight: float | None
    routes_generation: float | None


@dataclass(frozen=True)
class ServiceRow:
    """One gRPC service of one target over the window."""

    target: str
    service: str
    rps: float | None
    error_ratio: float | None
    p50_s: float | None
    p99_s: float | None


@dataclass(frozen=True)
class ModelRow:
    """Which versions the prediction servers serve for one model alias, and the model's
    cache hit ratio over the window (all targets together)."""

    model: str
    alias: str
    #: Served version -> how many targets serve it (more than one key: a switch in flight).
    versions: Mapping[int, int]
    cache_hit_ratio: float | None


@dataclass(frozen=True)
class SpoolRow:
    """The audit spool of one prediction server: what is not yet delivered, and how old."""

    target: str
    records: float
    bytes: float
    oldest_s: float | None
    delivered_per_s: float | None


@dataclass(frozen=True)
class MaterializationRow:
    """One running materialisation: rows written of rows total, and its rate."""

    model: str
    version: str
    written: float
    total: float
    rows_per_s: float | None

    @property
    def fraction(self) -> float:
        return self.written / self.total if self.total > 0 else 0.0


@dataclass(frozen=True)
class Frame:
    """Everything one refresh of `rowcast top` shows."""

    seconds: float
    targets: list[TargetRow]
    services: list[ServiceRow]
    models: list[ModelRow]
    spools: list[SpoolRow]
    materializations: list[MaterializationRow]
    registry_generation: float | None


def service_rows(w: Window) -> list[ServiceRow]:
    """Per gRPC service (health and reflection left out): rps, share of calls that did not
    end OK, p50 and p99 of the handling time, all over the window."""
    handled: dict[str, float] = defaultdict(float)
    failed: dict[str, float] = defaultdict(float)
    names = {
        labels["grpc_service"]
        for labels, _ in w.current.series("grpc_server_handled_total")
        if "grpc_service" in labels
    }
    for labels, v in w.increases("grpc_server_handled_total"):
        service = labels.get("grpc_service", "")
        handled[service] += v
        if labels.get("grpc_code") != "OK":
            failed[service] += v
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for labels, v in w.increases("grpc_server_handling_seconds_bucket"):
        buckets[labels.get("grpc_service", "")][float(labels["le"])] += v
    rows = []
    for service in sorted(n for n in names if not n.startswith(_INFRA_PREFIX)):
        calls = handled.get(service, 0.0)
        per_le = buckets.get(service, {})
        rows.append(
            ServiceRow(
                target=w.current.target.name,
                service=service,
                rps=calls / w.seconds if w.seconds > 0 else None,
                error_ratio=failed.get(service, 0.0) / calls if calls else None,
                p50_s=histogram_quantile(0.5, per_le.items()),
                p99_s=histogram_quantile(0.99, per_le.items()),
            )
        )
    return rows


def model_rows(windows: Sequence[Window]) -> list[ModelRow]:
    """Per model and alias over all targets: served versions, and the cache hit ratio."""
    served: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    hits: dict[str, float] = defaultdict(float)
    misses: dict[str, float] = defaultdict(float)
    for w in windows:
        for labels, v in w.current.series("rowcast_served_version"):
            if v > 0:
                served[(labels.get("model", "?"), labels.get("alias", "?"))][int(v)] += 1
        for labels, v in w.increases("rowcast_cache_hits_total"):
            hits[labels.get("model", "?")] += v
        for labels, v in w.increases("rowcast_cache_misses_total"):
            misses[labels.get("model", "?")] += v
    rows = []
    for (model, alias), versions in sorted(served.items()):
        lookups = hits.get(model, 0.0) + misses.get(model, 0.0)
        ratio = hits.get(model, 0.0) / lookups if lookups else None
        rows.append(ModelRow(model, alias, dict(sorted(versions.items())), ratio))
    return rows


def spool_row(w: Window) -> SpoolRow | None:
    """The target's spool, if it has one (prediction servers do)."""
    records = w.current.total("rowcast_spool_records")
    if records is None:
        return None
    delivered = w.increase("rowcast_decisions_delivered_total")
    return SpoolRow(
        target=w.current.target.name,
        records=records,
        bytes=w.current.total("rowcast_spool_bytes") or 0.0,
        oldest_s=w.current.total("rowcast_spool_oldest_undelivered_seconds"),
        delivered_per_s=None if delivered is None else delivered / w.seconds,
    )


def materialization_rows(w: Window) -> list[MaterializationRow]:
    """Materialisations the target reports that have rows left to write."""

    def by_run(name: str) -> dict[tuple[str, str], float]:
        return {
            (labels.get("model", "?"), labels.get("version", "?")): v
            for labels, v in w.current.series(name)
        }

    written = by_run("rowcast_materialize_rows_written")
    rates = by_run("rowcast_materialize_rows_per_second")
    rows = []
    for run, total in sorted(by_run("rowcast_materialize_rows_total").items()):
        done = written.get(run, 0.0)
        if total > 0 and done < total:
            rows.append(MaterializationRow(run[0], run[1], done, total, rates.get(run)))
    return rows


def frame(windows: Sequence[Window]) -> Frame:
    """One refresh's rows from every target's window."""
    targets, services, spools, materializations = [], [], [], []
    registry: list[float] = []
    for w in windows:
        cur = w.current
        targets.append(
            TargetRow(
                name=cur.target.name,
                url=cur.target.url,
                error=cur.error,
                in_flight=cur.total("rowcast_in_flight_calls"),
                routes_generation=cur.total("rowcast_routes_generation"),
            )
        )
        services += service_rows(w)
        spool = spool_row(w)
        if spool is not None:
            spools.append(spool)
        materializations += materialization_rows(w)
        registry += [v for _, v in cur.series("rowcast_registry_generation")]
    return Frame(
        seconds=max((w.seconds for w in windows), default=0.0),
        targets=targets,
        services=services,
        models=model_rows(windows),
        spools=spools,
        materializations=materializations,
        registry_generation=max(registry) if registry else None,
    )


# ----------------------------------------------------------------------------- drawing


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.3g}"


def _bytes(value: float) -> str:
    units = ("B", "KiB", "MiB", "GiB")
    step = 0
    while value >= 1024 and step < len(units) - 1:
        value /= 1024
        step += 1
    return f"{value:.0f} B" if step == 0 else f"{value:.1f} {units[step]}"


def _table(title: str, *columns: str) -> Table:
    """A table whose columns after the names (marked with a leading '>') align right."""
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c.lstrip(">"), justify="right" if c.startswith(">") else "left")
    return table


def render(f: Frame) -> RenderableType:
    """The frame as rich tables: targets, services, models, spools, materialisations."""
    stamp = datetime.now().strftime("%H:%M:%S")
    window = f"last {f.seconds:.1f} s" if f.seconds > 0 else "first scrape: no rates yet"
    parts: list[RenderableType] = [Text(f"rowcast top  {stamp}  ({window})", style="bold")]

    targets = _table("Processes", "target", "metrics", "state", ">in flight", ">routes gen")
    for t in f.targets:
        lagging = (
            t.routes_generation is not None
            and f.registry_generation is not None
            and t.routes_generation < f.registry_generation
        )
        gen = _num(t.routes_generation, 0) + (" (behind)" if lagging else "")
        state = Text("up", style="green") if t.error is None else Text(t.error, style="red")
        gen_text = Text(gen, "red" if lagging else "")
        targets.add_row(t.name, t.url, state, _num(t.in_flight, 0), gen_text)
    parts.append(targets)

    services = _table("Calls", "target", "service", ">rps", ">errors", ">p50 ms", ">p99 ms")
    for s in f.services:
        err_style = "red" if s.error_ratio else ""
        services.add_row(
            s.target, s.service, _num(s.rps), Text(_pct(s.error_ratio), err_style),
            _ms(s.p50_s), _ms(s.p99_s),
        )  # fmt: skip
    parts.append(services)

    if f.models:
        registry = _num(f.registry_generation, 0)
        models = _table(
            f"Models (registry generation {registry})",
            "model", "alias", "served version", ">cache hits",
        )  # fmt: skip
        for m in f.models:
            versions = ", ".join(
                f"v{v}" + (f" x{n}" if n > 1 else "") for v, n in m.versions.items()
            )
            style = "yellow" if len(m.versions) > 1 else ""
            models.add_row(m.model, m.alias, Text(versions, style), _pct(m.cache_hit_ratio))
        parts.append(models)

    if f.spools:
        spools = _table(
            "Audit spool", "target", ">undelivered", ">bytes", ">oldest s", ">delivered/s"
        )
        for sp in f.spools:
            spools.add_row(
                sp.target, _num(sp.records, 0), _bytes(sp.bytes), _num(sp.oldest_s),
                _num(sp.delivered_per_s),
            )  # fmt: skip
        parts.append(spools)

    if f.materializations:
        mats = _table("Materialisations", "model", ">version", "progress", ">rows", ">rows/s")
        for run in f.materializations:
            mats.add_row(
                run.model, run.version, ProgressBar(total=1.0, completed=run.fraction, width=24),
                f"{run.written:,.0f} / {run.total:,.0f} ({run.fraction:.0%})",
                _num(run.rows_per_s, 0),
            )  # fmt: skip
        parts.append(mats)
    return Group(*parts)


# ----------------------------------------------------------------------------- scraping


def scrape(target: Target, timeout_s: float) -> Snapshot:
    """Fetch and parse one /metrics page; a failure is a Snapshot with its reason."""
    try:
        with urllib.request.urlopen(target.url, timeout=timeout_s) as reply:
            text = reply.read().decode("utf-8")
        return Snapshot(target, time.monotonic(), parse(text))
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return Snapshot(target, time.monotonic(), error=f"down: {exc}")


def default_targets(settings: Settings) -> list[Target]:
    """The three services' /metrics endpoints on the ports the suite's settings give."""
    m = settings.metrics
    ports = {"prediction": m.prediction_port, "audit": m.audit_port, "model": m.model_port}
    return [Target(name, f"http://{m.host}:{p}/metrics") for name, p in ports.items()]


class Scraper:
    """Scrapes every target at once and remembers the last snapshot of each."""

    def __init__(self, targets: Sequence[Target], timeout_s: float) -> None:
        self._targets = list(targets)
        self._timeout_s = timeout_s
        self._last: dict[Target, Snapshot] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self._targets)))

    def step(self) -> Frame:
        snapshots = list(self._pool.map(lambda t: scrape(t, self._timeout_s), self._targets))
        windows = [Window(self._last.get(s.target), s) for s in snapshots]
        self._last = {s.target: s for s in snapshots}
        return frame(windows)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


@click.command()
@click.option(
    "--metrics",
    "urls",
    multiple=True,
    metavar="[NAME=]URL",
    help="A /metrics endpoint to read (repeatable; host:port is enough). Default: the three "
    "services on the ROWCAST_*_METRICS_PORT settings.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between scrapes; rates and percentiles are over this window.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Scrape twice, --interval apart, print one frame and exit (for scripts and tests).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds one scrape may take before its target counts as down.",
)
def top(urls: tuple[str, ...], interval: float, once: bool, timeout: float) -> None:
    """Live view of a running suite: per service rps, errors, p50/p99; cache hit ratio;
    audit spool lag; served versions; running materialisations (from /metrics).

    Ctrl-C quits.
    """
    targets = [target_from_option(u) for u in urls] or default_targets(Settings.from_env())
    scraper = Scraper(targets, timeout)
    console = Console()
    try:
        first = scraper.step()
        if once:
            time.sleep(interval)
            console.print(render(scraper.step()))
            return
        with Live(render(first), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(render(scraper.step()), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        scraper.close()
