"""Writes a run's results: `<stamp>.json` / `.md` with plots, and `latest.*` copies."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rowcast_bench.measurement import RunResult
from rowcast_bench.ratios import Verdict, evaluate

_PLOTS = ("latency", "percentiles", "throughput")


@dataclass(frozen=True)
class Written:
    """Files written for one run."""

    json: Path
    markdown: Path
    latest_json: Path
    latest_markdown: Path
    verdicts: list[Verdict]


def stamp(result: RunResult) -> str:
    return result.started.strftime("%Y%m%dT%H%M%SZ")


def to_json(result: RunResult, verdicts: list[Verdict]) -> dict[str, Any]:
    options = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result.options).items()}
    return {
        "timestamp": result.started.isoformat(),
        "options": options,
        "meta": result.meta,
        "measurements": {n: m.to_json() for n, m in result.measurements.items()},
        "failures": result.failures,
        "ratios": {v.goal.name: v.value for v in verdicts},
        "goals": {
            v.goal.name: {"goal": v.goal.goal_text, "pass": v.passed, "meaning": v.goal.meaning}
            for v in verdicts
        },
    }


def write(result: RunResult, out_dir: Path) -> Written:
    """Write JSON, markdown and plots for the run, and refresh the `latest.*` copies."""
    # matplotlib is a dev dependency: import it only when a run has results to draw, so the
    # `rowcast` command itself starts without it.
    from rowcast_bench import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    name = stamp(result)
    verdicts = evaluate(result.measurements)
    payload = json.dumps(to_json(result, verdicts), indent=2) + "\n"
    ms = result.measurements
    title = f"rowcast bench {name}" + (" (quick)" if result.options.quick else "")
    if ms:
        plots.latency_cdf(ms, out_dir / f"{name}-latency.png", title + ": latency CDF")
        plots.percentiles(ms, out_dir / f"{name}-percentiles.png", title + ": percentiles")
        plots.throughput(ms, out_dir / f"{name}-throughput.png", title + ": throughput")
        for kind in _PLOTS:
            shutil.copyfile(out_dir / f"{name}-{kind}.png", out_dir / f"latest-{kind}.png")
    written = Written(
        json=out_dir / f"{name}.json",
        markdown=out_dir / f"{name}.md",
        latest_json=out_dir / "latest.json",
        latest_markdown=out_dir / "latest.md",
        verdicts=verdicts,
    )
    written.json.write_text(payload)
    written.latest_json.write_text(payload)
    written.markdown.write_text(markdown(result, verdicts, name, images=name if ms else None))
    written.latest_markdown.write_text(
        markdown(result, verdicts, name, images="latest" if ms else None)
    )
    return written


def _load(meta: dict[str, Any], key: str) -> str:
    values = meta.get(key)
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


def verdict_word(passed: bool | None, value: float | None) -> str:
    if value is None:
        return "NOT MEASURED"
    if passed is None:
        return "-"
    return "PASS" if passed else "FAIL"


def markdown(result: RunResult, verdicts: list[Verdict], name: str, images: str | None) -> str:
    o = result.options
    meta = result.meta
    machine = meta.get("machine", {})
    model = meta.get("model", {})
    lines = [
        f"# rowcast bench {name}" + (" (quick: smoke-test numbers)" if o.quick else ""),
        "",
        f"- machine: {machine.get('cpus', '?')} cores, {machine.get('cpu_model', '?')}; "
        f"Python {machine.get('python', '?')}; packages {meta.get('packages', {})}; "
        f"code at {meta.get('git', '?')}",
        f"- ghz {meta.get('ghz', '?')} pinned to core {o.client_cpu}; every server pinned to "
        f"core {o.server_cpu}; HBase ({meta.get('hbase', '?')}) and the AuditService "
        + ("not pinned" if o.downstream_cpu is None else f"pinned to core {o.downstream_cpu}"),
        f"- servers: {meta.get('security', '?')} (the floors echo and compute_* serve the same "
        "transport); the predict_hit_secure / predict_hit_insecure pair runs either way",
        f"- model {model.get('name', '?')} v{model.get('version', '?')} "
        f"({model.get('table', '?')}); large model: {model.get('large_model', '?')}",
        f"- {o.duration_s:g} s per measurement after {o.warmup_s:g} s warm-up per server; "
        f"concurrency {o.concurrency} (the `_c1` runs: 1); StreamPredict "
        f"{o.stream_messages} messages a call; a run during which other processes used more "
        f"than {o.max_other_cores:g} cores was repeated (at most {o.attempts} runs, after up "
        f"to {o.quiet_wait_s:g} s waiting for quiet) and the quietest kept",
        f"- load average (1/5/15 min) before {_load(meta, 'loadavg_before')}, after "
        f'{_load(meta, "loadavg_after")}; "others\' cores" below is CPU that processes outside '
        "the benchmark used during each measurement (0 on a quiet machine)",
        "",
        "## Ratios",
        "",
        "| ratio | value | goal | verdict | meaning |",
        "|---|---:|---|---|---|",
    ]
    for v in verdicts:
        value = "-" if v.value is None else f"{v.value:.3f}"
        lines.append(
            f"| `{v.goal.name}` | {value} | {v.goal.goal_text} | "
            f"{verdict_word(v.passed, v.value)} | {v.goal.meaning} |"
        )
    lines += [
        "",
        "## Measurements",
        "",
        "| name | what | server | c | calls/s | preds/s | p50 ms | p90 ms | p99 ms | errors "
        "| server CPU us/call | downstream CPU us/call | others' cores |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in result.measurements.values():
        rate = f" @ {m.target_rps:,.0f}/s" if m.target_rps else ""
        other = "-" if m.other_cores is None else f"{m.other_cores:.2f}"
        cost = m.server_cpu_us_per_call
        cpu = "-" if cost is None else f"{cost:.0f}"
        down = m.downstream_cpu_us_per_call
        cpu += " | " + ("-" if down is None else f"{down:.0f}")
        lines.append(
            f"| `{m.name}` | {m.description}{rate} | {m.server} | {m.concurrency} | "
            f"{m.rps:,.0f} | {m.keys_per_s:,.0f} | {m.p50_ms:.3f} | {m.p90_ms:.3f} | "
            f"{m.p99_ms:.3f} | {m.errors} | {cpu} | {other} |"
        )
    if result.failures:
        lines += ["", "## Failed measurements", ""]
        lines += [f"- `{n}`: {why}" for n, why in result.failures.items()]
    if images:
        lines += ["", "## Plots", ""]
        lines += [f"![{kind}]({images}-{kind}.png)" for kind in _PLOTS]
    return "\n".join(lines) + "\n"
