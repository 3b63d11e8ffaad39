"""Waiting for a route change to reach the running prediction servers, and its report."""

from __future__ import annotations

import asyncio

from google.protobuf.duration_pb2 import Duration

from rowcast.store.notify import Propagation, RegistryNotifier
from rowcast.v1 import model_service_pb2 as model_pb


class PropagationWaiter:
    """Waits until every registered prediction server serves a registry generation.

    Without ZooKeeper (watching turned off) nothing can be waited for: the change is reported
    as not known to be complete, and servers pick it up by polling.
    """

    def __init__(self, notifier: RegistryNotifier | None, timeout_s: float) -> None:
        self._notifier = notifier
        self._timeout_s = timeout_s

    async def wait(self, generation: int, budget_s: float | None = None) -> Propagation:
        """Wait up to the configured timeout (less when the caller's `budget_s` is shorter)."""
        if self._notifier is None:
            return Propagation(generation=generation, servers=0)
        timeout = self._timeout_s if budget_s is None else min(self._timeout_s, budget_s)
        return await asyncio.to_thread(
            self._notifier.await_generation, generation, max(timeout, 0.0)
        )


def propagation_to_pb(p: Propagation) -> model_pb.Propagation:
    wait = Duration()
    wait.FromNanoseconds(int(p.waited_s * 1e9))
    return model_pb.Propagation(
        generation=p.generation,
        servers=p.servers,
        lagging_servers=p.lagging,
        complete=p.complete,
        wait=wait,
    )
