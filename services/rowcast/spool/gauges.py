"""The spool gauges of this process, read at scrape time from every open spool: a prediction
server's own and the orphans it adopted (a dead server's undelivered decisions are this one's
to deliver now). Nothing is computed on the append path but a counter and a timestamp."""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from typing import Protocol

from rowcast.telemetry.domain import (
    SPOOL_BYTES,
    SPOOL_OLDEST_UNDELIVERED_SECONDS,
    SPOOL_RECORDS,
    expose,
)


@dataclass(frozen=True)
class SpoolFigures:
    """What one spool holds right now."""

    disk_bytes: int
    undelivered: int
    #: When the oldest undelivered record was appended (epoch seconds; None: none is).
    oldest_append_time: float | None


class Measured(Protocol):
    def figures(self) -> SpoolFigures: ...


class OpenSpools:
    """The spools open in this process, summed into the spool gauges when they are scraped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spools: weakref.WeakSet[Measured] = weakref.WeakSet()
        self._exposed = False

    def add(self, spool: Measured) -> None:
        with self._lock:
            self._spools.add(spool)
            if not self._exposed:
                SPOOL_BYTES.set_function(lambda: sum(f.disk_bytes for f in self._figures()))
                SPOOL_RECORDS.set_function(lambda: sum(f.undelivered for f in self._figures()))
                SPOOL_OLDEST_UNDELIVERED_SECONDS.set_function(self.oldest_undelivered_s)
                expose(SPOOL_BYTES, SPOOL_RECORDS, SPOOL_OLDEST_UNDELIVERED_SECONDS)
                self._exposed = True

    def discard(self, spool: Measured) -> None:
        with self._lock:
            self._spools.discard(spool)

    def oldest_undelivered_s(self) -> float:
        times = [f.oldest_append_time for f in self._figures()]
        oldest = min((t for t in times if t is not None), default=None)
        return 0.0 if oldest is None else max(time.time() - oldest, 0.0)

    def _figures(self) -> list[SpoolFigures]:
        with self._lock:
            spools = list(self._spools)
        return [s.figures() for s in spools]


#: The one set of a process (the gauges are the process's, in the default REGISTRY).
OPEN_SPOOLS = OpenSpools()
