"""The result of a serving chaos run: latency and failures per window (steady state, each
fault), reassignment times, the audit check, and the goals with their verdicts.

A call belongs to the window its intended start falls in; its latency runs from that intended
start to its end (failed calls included: a call that failed at its deadline took that long).
Percentiles are nearest-rank over the window's calls.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rowcast_dev.chaos.check import CheckResult
from rowcast_dev.chaos.load import CallRecord

#: p99 during a region-server kill may be at most this many times the steady-state p99.
KILL_P99_FACTOR = 3.0
#: The fault kind the latency goal is about (serving_faults.ServingFaultKind's value).
KILL_REGIONSERVER = "kill-regionserver"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of values sorted ascending; nan when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class WindowStats:
    """The calls whose intended start fell in one window: how many, how they failed, latency."""

    calls: int
    failed: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    seconds: float

    @classmethod
    def of(cls, calls: Sequence[CallRecord], seconds: float) -> WindowStats:
        latencies = sorted(c.latency_s * 1000.0 for c in calls)
        failed = Counter(c.status for c in calls if c.status != "OK")
        return cls(
            calls=len(calls),
            failed=dict(sorted(failed.items())),
            p50_ms=percentile(latencies, 50),
            p99_ms=percentile(latencies, 99),
            max_ms=latencies[-1] if latencies else math.nan,
            seconds=seconds,
        )

    @property
    def failed_calls(self) -> int:
        return sum(self.failed.values())

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "failed": self.failed_calls,
            "failed_by_status": self.failed,
            "p50_ms": _ms(self.p50_ms),
            "p99_ms": _ms(self.p99_ms),
            "max_ms": _ms(self.max_ms),
            "seconds": round(self.seconds, 2),
            "calls_per_s": _ms(self.calls_per_s),
        }


def _ms(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 2)


def calls_between(calls: Sequence[CallRecord], start_s: float, end_s: float) -> list[CallRecord]:
    """The calls whose intended start is in [start_s, end_s) (monotonic seconds)."""
    return [c for c in calls if start_s <= c.intended_s < end_s]


def timeline(calls: Sequence[CallRecord], epoch: float, step_s: float = 1.0) -> list[list[Any]]:
    """Per `step_s` of intended start since `epoch`: [second, calls, failed, p99 ms] (what a
    fault did over time, to read beside the fault's `at_s`)."""
    buckets: dict[int, list[CallRecord]] = {}
    for c in calls:
        buckets.setdefault(int((c.intended_s - epoch) // step_s), []).append(c)
    rows: list[list[Any]] = []
    for index in sorted(buckets):
        stats = WindowStats.of(buckets[index], step_s)
        rows.append([round(index * step_s, 1), stats.calls, stats.failed_calls, _ms(stats.p99_ms)])
    return rows


@dataclass(frozen=True)
class FaultWindow:
    """One fault as it happened, and the load during it (from the signal until the target
    served again, plus the settle time after it)."""

    kind: str
    round: int
    #: The component signalled ("regionserver-2", "thrift2-1").
    target: str
    signal: str
    #: Seconds after the load started.
    at_s: float
    #: Seconds from the signal until the target served again.
    outage_s: float
    #: Seconds until every primary of the version table was on a live server again (None:
    #: they never left the target, or not within the wait).
    reassign_s: float | None
    #: Primaries of the version table the target held when signalled.
    primaries_on_target: int
    stats: WindowStats
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "round": self.round,
            "target": self.target,
            "signal": self.signal,
            "at_s": round(self.at_s, 2),
            "outage_s": round(self.outage_s, 2),
            "reassign_s": round(self.reassign_s, 2) if self.reassign_s is not None else None,
            "primaries_on_target": self.primaries_on_target,
            **self.stats.to_json(),
            "note": self.note,
        }


@dataclass(frozen=True)
class Goal:
    """One goal of the issue, what was measured and whether it was met."""

    name: str
    target: str
    measured: str
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "measured": self.measured,
            "verdict": "PASS" if self.passed else "FAIL",
        }


def judge_goals(
    total: WindowStats, steady: WindowStats, faults: Sequence[FaultWindow], check: CheckResult
) -> list[Goal]:
    """The three goals: no failed Predict over the whole run; p99 during every region-server
    kill at most KILL_P99_FACTOR x the steady p99; the audit neither lost nor duplicated (nor
    recorded wrongly) a decision. A goal that could not be measured fails."""
    failed = ", ".join(f"{k} {v}" for k, v in total.failed.items()) or "none"
    goals = [
        Goal(
            "no_failed_predicts",
            "0 failed Predict calls",
            f"{total.failed_calls} of {total.calls} failed ({failed})",
            total.calls > 0 and total.failed_calls == 0,
        )
    ]
    kills = [f for f in faults if f.kind == KILL_REGIONSERVER]
    limit = KILL_P99_FACTOR * steady.p99_ms
    if kills and not math.isnan(limit):
        worst = max(kills, key=lambda f: f.stats.p99_ms if not math.isnan(f.stats.p99_ms) else 0)
        measured = (
            f"worst p99 {worst.stats.p99_ms:.1f} ms (round {worst.round}, {worst.target}) vs "
            f"limit {limit:.1f} ms (steady p99 {steady.p99_ms:.1f} ms)"
        )
        ok = all(not math.isnan(f.stats.p99_ms) and f.stats.p99_ms <= limit for f in kills)
    else:
        measured = "not measured (no region-server kill, or no steady-state calls)"
        ok = False
    target = f"p99 during a region-server kill <= {KILL_P99_FACTOR:g}x steady p99"
    goals.append(Goal("kill_p99", target, measured, ok))
    goals.append(
        Goal(
            "audit",
            "audit: 0 lost, 0 duplicated, 0 mismatched",
            f"{check.lost} lost, {check.duplicated} duplicated, {check.mismatched} mismatched "
            f"of {check.acknowledged} acknowledged",
            check.acknowledged > 0
            and check.lost == 0
            and check.duplicated == 0
            and check.mismatched == 0,
        )
    )
    return goals


@dataclass
class ServingReport:
    """What a serving chaos run did and measured, and its verdict."""

    started_at: str
    settings: dict[str, Any]
    total: WindowStats
    steady: WindowStats
    faults: list[FaultWindow]
    check: CheckResult
    drain_seconds: float | None
    #: The cluster's layout when the load started (component -> what it held or served).
    layout: dict[str, Any] = field(default_factory=dict)
    load_seconds: float = 0.0
    total_seconds: float = 0.0
    #: [second since the load started, calls, failed, p99 ms] per second (see `timeline`).
    per_second: list[list[Any]] = field(default_factory=list)
    #: Why the run stopped short ("" when every round ran and the spools drained).
    incomplete: str = ""
    home: str = ""

    @property
    def goals(self) -> list[Goal]:
        return judge_goals(self.total, self.steady, self.faults, self.check)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.goals)

    def by_kind(self) -> dict[str, dict[str, Any]]:
        """Per fault kind: the worst window's latency and all reassignment times."""
        kinds: dict[str, dict[str, Any]] = {}
        for f in self.faults:
            entry = kinds.setdefault(
                f.kind,
                {"rounds": 0, "failed": 0, "worst_p99_ms": None, "max_ms": None, "reassign_s": []},
            )
            entry["rounds"] += 1
            entry["failed"] += f.stats.failed_calls
            for key, value in (("worst_p99_ms", f.stats.p99_ms), ("max_ms", f.stats.max_ms)):
                if not math.isnan(value):
                    entry[key] = round(max(entry[key] or 0.0, value), 2)
            if f.reassign_s is not None:
                entry["reassign_s"].append(round(f.reassign_s, 2))
        return kinds

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "goals": [g.to_json() for g in self.goals],
            "incomplete": self.incomplete,
            "calls": self.total.calls,
            "failed": self.total.failed_calls,
            "failed_by_status": self.total.failed,
            "steady": self.steady.to_json(),
            "by_kind": self.by_kind(),
            "faults": [f.to_json() for f in self.faults],
            "audit": {
                "lost": self.check.lost,
                "duplicated": self.check.duplicated,
                "mismatched": self.check.mismatched,
                "acknowledged": self.check.acknowledged,
                "drain_seconds": (
                    round(self.drain_seconds, 2) if self.drain_seconds is not None else None
                ),
                "check": self.check.to_json(),
            },
            "total": self.total.to_json(),
            "layout": self.layout,
            "settings": self.settings,
            "seconds": {"load": round(self.load_seconds, 1), "total": round(self.total_seconds, 1)},
            "per_second": self.per_second,
            "started_at": self.started_at,
            "home": self.home,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def summary(self) -> str:
        s = self.steady
        lines = [
            f"calls {self.total.calls:,}  failed {self.total.failed_calls:,} "
            f"{self.total.failed or ''}".rstrip(),
            f"steady      {s.calls:6,} calls  p50 {_fmt(s.p50_ms)}  p99 {_fmt(s.p99_ms)}  "
            f"max {_fmt(s.max_ms)}  {_fmt(s.calls_per_s, '/s')}",
        ]
        for f in self.faults:
            st = f.stats
            reassign = f"  reassigned {f.reassign_s:.1f} s" if f.reassign_s is not None else ""
            lines.append(
                f"{f.kind:<18} r{f.round} {f.target:<14} {st.calls:6,} calls  failed "
                f"{st.failed_calls}  p50 {_fmt(st.p50_ms)}  p99 {_fmt(st.p99_ms)}  max "
                f"{_fmt(st.max_ms)}  back {f.outage_s:.1f} s{reassign}"
            )
        drain = f"{self.drain_seconds:.1f} s" if self.drain_seconds is not None else "not drained"
        c = self.check
        lines.append(
            f"audit: acknowledged {c.acknowledged:,}  lost {c.lost}  duplicated {c.duplicated}  "
            f"mismatched {c.mismatched}  (spools drained in {drain})"
        )
        for g in self.goals:
            lines.append(f"{'PASS' if g.passed else 'FAIL'}  {g.target}: {g.measured}")
        if self.incomplete:
            lines.append(f"INCOMPLETE: {self.incomplete}")
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)


def _fmt(value: float, unit: str = " ms") -> str:
    return "-" if math.isnan(value) else f"{value:.1f}{unit}"
