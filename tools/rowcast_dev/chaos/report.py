"""The result of a chaos run, as JSON (written to a file and printed) and as a short summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rowcast_dev.chaos.check import CheckResult
from rowcast_dev.chaos.faults import FaultEvent

#: The result's first fields: what a run is judged and compared by.
HEADLINE = ("acknowledged", "found", "lost", "duplicated", "kills", "drain_seconds")


@dataclass
class ChaosReport:
    """What a run did (load, faults, timings) and what the check found."""

    started_at: str
    seed: int
    target_decisions: int
    target_kills: int
    durability: str
    prediction_servers: int
    concurrency: int
    check: CheckResult
    faults: list[FaultEvent]
    drain_seconds: float | None
    #: Predict calls made and how the failed ones failed (status -> calls).
    attempted: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    load_seconds: float = 0.0
    check_seconds: float = 0.0
    total_seconds: float = 0.0
    quarantined_files: int = 0
    #: Why the run stopped short of its targets ("" when it reached them).
    incomplete: str = ""
    home: str = ""
    #: How the services ran: TLS on every call (the audit stream included) and tokens checked.
    security: str = "tls+token"

    @property
    def kills(self) -> int:
        return sum(1 for f in self.faults if f.signal == "SIGKILL")

    @property
    def stops(self) -> int:
        return sum(1 for f in self.faults if f.signal == "SIGSTOP")

    @property
    def passed(self) -> bool:
        c = self.check
        return c.lost == 0 and c.duplicated == 0 and c.mismatched == 0

    def kills_by_target(self) -> dict[str, int]:
        """kill -9s per target ("audit", "prediction-<i>", "hbase-master", "hbase-thrift")."""
        counts: dict[str, int] = {}
        for f in self.faults:
            if f.signal == "SIGKILL":
                counts[f.target] = counts.get(f.target, 0) + 1
        return dict(sorted(counts.items()))

    def to_json(self) -> dict[str, Any]:
        check = self.check.to_json()
        return {
            "acknowledged": self.check.acknowledged,
            "found": self.check.found,
            "lost": self.check.lost,
            "duplicated": self.check.duplicated,
            "kills": self.kills,
            "drain_seconds": (
                round(self.drain_seconds, 2) if self.drain_seconds is not None else None
            ),
            "passed": self.passed,
            "incomplete": self.incomplete,
            "mismatched": self.check.mismatched,
            "stops": self.stops,
            "kills_by_target": self.kills_by_target(),
            **{k: v for k, v in check.items() if k not in ("acknowledged", "found", "lost")},
            "quarantined_files": self.quarantined_files,
            "requests": {"attempted": self.attempted, "failed": self.failed},
            "seconds": {
                "load": round(self.load_seconds, 1),
                "check": round(self.check_seconds, 1),
                "total": round(self.total_seconds, 1),
            },
            "settings": {
                "target_decisions": self.target_decisions,
                "target_kills": self.target_kills,
                "seed": self.seed,
                "durability": self.durability,
                "prediction_servers": self.prediction_servers,
                "concurrency": self.concurrency,
                "security": self.security,
            },
            "faults": [f.to_json() for f in self.faults],
            "started_at": self.started_at,
            "home": self.home,
        }

    def headline(self) -> dict[str, Any]:
        """The HEADLINE fields of the JSON result, in that order."""
        result = self.to_json()
        return {k: result[k] for k in HEADLINE}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def summary(self) -> str:
        c = self.check
        drain = f"{self.drain_seconds:.1f} s" if self.drain_seconds is not None else "not drained"
        by_target = ", ".join(f"{t} {n}" for t, n in self.kills_by_target().items())
        lines = [
            f"acknowledged {c.acknowledged:,}  found {c.found:,}  lost {c.lost:,}  "
            f"duplicated {c.duplicated:,}  mismatched {c.mismatched:,}",
            f"kills {self.kills} ({by_target}), stops {self.stops}, drain {drain}, "
            f"load {self.load_seconds:.0f} s, check {self.check_seconds:.0f} s",
            f"unacknowledged decisions on record (spooled, answer never received): "
            f"{c.unacknowledged_on_record:,}; failed Predict calls: "
            f"{sum(self.failed.values()):,} of {self.attempted:,}",
        ]
        if self.incomplete:
            lines.append(f"INCOMPLETE: {self.incomplete}")
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)
