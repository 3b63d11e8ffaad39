"""The ratios issues 4, 13 and 14 set goals for (and what issue 10's TLS + auth costs), computed
from a run's measurements.

Each goal is a comparison against a floor measured in the same run on the same machine, so
the verdicts travel across machines better than absolute numbers do.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from rowcast_bench.measurement import Measurement
from rowcast_bench.workload import BATCH_SIZE

Measurements = Mapping[str, Measurement]


@dataclass(frozen=True)
class Goal:
    """One ratio: how to compute it, which way is good, and the threshold."""

    name: str
    meaning: str
    compute: Callable[[Measurements], float]
    #: ">=", "<=", "<" or "" (reported without a goal).
    op: str = ""
    threshold: float = 0.0

    def verdict(self, value: float | None) -> bool | None:
        """True/False against the threshold; None when there is no goal or no value."""
        if not self.op or value is None:
            return None
        compare: dict[str, Callable[[float, float], bool]] = {
            ">=": operator.ge,
            "<=": operator.le,
            "<": operator.lt,
        }
        return compare[self.op](value, self.threshold)

    @property
    def goal_text(self) -> str:
        return f"{self.op} {self.threshold:g}" if self.op else "(reported)"


def _m(ms: Measurements, name: str) -> Measurement:
    return ms[name]


def _cpu(ms: Measurements, name: str) -> float:
    value = ms[name].server_cpu_us_per_call
    if value is None:
        raise KeyError(f"{name} has no server CPU figure")
    return value


def paired_median(ms: Measurements, a: str, b: str) -> float:
    """Median over turns i of server CPU per call, `a_<i>` / `b_<i>`: the two runs of a turn
    run back to back, so their ratio carries less of the machine's drift than a ratio across turns
    (an even count takes the lower middle)."""
    ratios = []
    turn = 1
    while f"{a}_{turn}" in ms and f"{b}_{turn}" in ms:
        ratios.append(_cpu(ms, f"{a}_{turn}") / _cpu(ms, f"{b}_{turn}"))
        turn += 1
    if not ratios:
        raise KeyError(f"no turns of {a} and {b}")
    return sorted(ratios)[(len(ratios) - 1) // 2]


GOALS: Final[tuple[Goal, ...]] = (
    Goal(
        "cache_hit_rps_vs_echo",
        "max rps of Predict with a warm cache / max rps of the bare echo server",
        lambda ms: _m(ms, "predict_hit").rps / _m(ms, "echo").rps,
        ">=",
        0.85,
    ),
    Goal(
        "cache_hit_p50_vs_echo",
        "p50 of a cached Predict / p50 of echo, both at concurrency 1",
        lambda ms: _m(ms, "predict_hit_c1").p50_ms / _m(ms, "echo_c1").p50_ms,
        "<=",
        1.25,
    ),
    Goal(
        "cache_miss_p50_vs_floor",
        "p50 of an uncached Predict / (echo p50 + raw row() p50), concurrency 1",
        lambda ms: (
            _m(ms, "predict_miss_c1").p50_ms / (_m(ms, "echo_c1").p50_ms + _m(ms, "raw_row").p50_ms)
        ),
        "<=",
        1.15,
    ),
    Goal(
        "batch32_per_key_vs_single",
        f"(p50 of a PredictBatch of {BATCH_SIZE} / {BATCH_SIZE}) / p50 of one cached Predict",
        lambda ms: (
            (_m(ms, "predict_batch32_c1").p50_ms / BATCH_SIZE) / _m(ms, "predict_hit_c1").p50_ms
        ),
        "<=",
        0.25,
    ),
    Goal(
        "audit_on_rps_vs_off",
        "max rps of cached Predict with audit on / with audit off",
        lambda ms: _m(ms, "predict_hit").rps / _m(ms, "predict_hit_audit_off").rps,
        ">=",
        0.90,
    ),
    Goal(
        "p99_ms_at_70pct_load",
        "p99 (ms) of cached Predict at a fixed 70% of its max rps",
        lambda ms: _m(ms, "predict_hit_70pct").p99_ms,
        "<",
        2.0,
    ),
    Goal(
        "p99_ms_at_70pct_load_open",
        "p99 (ms) of cached Predict at the same rate open loop: latency from each call's "
        "intended start (rowcast_bench.openloop), so waiting behind a stall is counted",
        lambda ms: _m(ms, "predict_hit_70pct_open").p99_ms,
        "<",
        2.0,
    ),
    Goal(
        "echo_p99_ms_at_70pct_load",
        "the floor's own tail: p99 (ms) of the bare grpc.aio echo server at a fixed 70% of its "
        "max rps (closed loop, as p99_ms_at_70pct_load)",
        lambda ms: _m(ms, "echo_70pct").p99_ms,
    ),
    Goal(
        "echo_p99_ms_at_70pct_load_open",
        "p99 (ms) of the echo server at the same rate open loop (as p99_ms_at_70pct_load_open)",
        lambda ms: _m(ms, "echo_70pct_open").p99_ms,
    ),
    Goal(
        "p50_ms_at_70pct_load",
        "p50 (ms) of cached Predict at a fixed 70% of its max rps",
        lambda ms: _m(ms, "predict_hit_70pct").p50_ms,
    ),
    Goal(
        "cache_hit_rps_vs_compute_large",
        "max rps of cached Predict / max rps of LightGBM computing the large model",
        lambda ms: _m(ms, "predict_hit").rps / _m(ms, "compute_large").rps,
        ">=",
        1.5,
    ),
    Goal(
        "cache_hit_rps_vs_compute_demo",
        "max rps of cached Predict / max rps of LightGBM computing the demo model",
        lambda ms: _m(ms, "predict_hit").rps / _m(ms, "compute_demo").rps,
    ),
    Goal(
        "cache_hit_server_cpu_vs_echo",
        "server CPU per call: cached Predict / echo (under load; robust to other load)",
        lambda ms: _cpu(ms, "predict_hit") / _cpu(ms, "echo"),
        "<=",
        1.3,
    ),
    Goal(
        "audit_fsync_rps_vs_process",
        "max rps of cached Predict with fsync durability / with process durability (default)",
        lambda ms: _m(ms, "predict_hit_audit_fsync").rps / _m(ms, "predict_hit").rps,
    ),
    Goal(
        "audit_on_server_cpu_vs_off",
        "server CPU per call of cached Predict: audit on / audit off",
        lambda ms: _cpu(ms, "predict_hit") / _cpu(ms, "predict_hit_audit_off"),
        "<=",
        1.10,
    ),
    Goal(
        "two_processes_rps_vs_one",
        "max rps of cached Predict: `--processes 2` / `--processes 1`, both unpinned, "
        "4 connections (ghz shares a core with one of the two processes)",
        lambda ms: _m(ms, "predict_hit_2proc").rps / _m(ms, "predict_hit_1proc").rps,
    ),
    Goal(
        "metrics_server_cpu_vs_off",
        "server CPU per call of cached Predict at one fixed rate: metrics on (default) / "
        "ROWCAST_METRICS=off, median over turns of the ratio within a turn",
        lambda ms: paired_median(
            ms, "predict_hit_metrics_on_70pct", "predict_hit_metrics_off_70pct"
        ),
        "<=",
        1.03,
    ),
    Goal(
        "metrics_rps_vs_off",
        "max rps of cached Predict, side by side: metrics on (default) / ROWCAST_METRICS=off",
        lambda ms: _m(ms, "predict_hit_metrics_on").rps / _m(ms, "predict_hit_metrics_off").rps,
    ),
    Goal(
        "tls_auth_server_cpu_vs_off",
        "server CPU per call of cached Predict at one fixed rate: TLS + token auth on "
        "(default) / ROWCAST_INSECURE=on, median over turns of the ratio within a turn",
        lambda ms: paired_median(ms, "predict_hit_secure_70pct", "predict_hit_insecure_70pct"),
    ),
    Goal(
        "tls_auth_rps_vs_off",
        "max rps of cached Predict, side by side: TLS + token auth on (default) / off",
        lambda ms: _m(ms, "predict_hit_secure").rps / _m(ms, "predict_hit_insecure").rps,
    ),
    Goal(
        "stream_keys_per_s_vs_unary",
        "predictions/s through StreamPredict / through concurrent unary Predict",
        lambda ms: _m(ms, "stream_predict").keys_per_s / _m(ms, "predict_hit").rps,
    ),
    Goal(
        "batch32_keys_per_s_vs_unary",
        f"predictions/s through PredictBatch of {BATCH_SIZE} / through unary Predict",
        lambda ms: _m(ms, "predict_batch32").keys_per_s / _m(ms, "predict_hit").rps,
    ),
)


@dataclass(frozen=True)
class Verdict:
    """A ratio's value (None if a measurement it needs failed) and whether it met its goal."""

    goal: Goal
    value: float | None
    passed: bool | None


def evaluate(ms: Measurements) -> list[Verdict]:
    verdicts = []
    for goal in GOALS:
        try:
            value: float | None = goal.compute(ms)
        except (KeyError, ZeroDivisionError):
            value = None
        verdicts.append(Verdict(goal, value, goal.verdict(value)))
    return verdicts
