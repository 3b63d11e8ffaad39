"""How a change of routes reaches every prediction server: the one home of activation
propagation.

Model side (`Propagator`), after an alias change is written to HBase (store/aliases.py):

    1. bump the registry generation cell in HBase (the source of truth; store/models.py);
    2. announce the new generation in ZooKeeper (store/notify.py, a pure ZooKeeper adapter);
    3. wait, within the caller's budget, until every registered prediction server reports that
       its routes are at that generation, and say how far the change got (`Propagation`).

Prediction side (`follow_changes`): the server's version router (prediction/router.py) reloads
its routes when the ZooKeeper watch fires (or at its next poll of the generation cell), and
reports the generation it reached in its presence znode, which is what step 3 waits for.
A request started after step 3 completes is answered with the change in place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from rowcast.core.records import Propagation
from rowcast.store.notify import RegistryNotifier, ServerPresence
from rowcast.store.protocols import GenerationCounter
from rowcast.telemetry.domain import (
    ACTIVATION_LAGGING_SERVERS,
    ACTIVATION_PROPAGATION_SECONDS,
    REGISTRY_GENERATION,
    expose,
)

log = logging.getLogger(__name__)


class Propagator:
    """Bumps the generation after a route change, announces it, and waits for the servers."""

    def __init__(
        self,
        models: GenerationCounter,
        notifier: RegistryNotifier | None,
        *,
        wait_s: float,
        store_timeout_s: float,
    ) -> None:
        """`wait_s`: the longest a change waits for the servers (a caller's shorter deadline
        wins). `store_timeout_s`: the deadline of the generation bump, which is never cut
        short by the caller's: a change written but not bumped would reach the servers only
        at their next full reload (router.FULL_RELOAD_S)."""
        self._models = models
        self._notifier = notifier
        self._wait_s = wait_s
        self._store_timeout_s = store_timeout_s
        expose(REGISTRY_GENERATION, ACTIVATION_PROPAGATION_SECONDS, ACTIVATION_LAGGING_SERVERS)

    async def propagate(self, *, budget_s: float) -> Propagation:
        """Make the change just written reach the servers; wait for them at most `budget_s`
        seconds (and at most `wait_s`)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + budget_s
        generation = await self._models.bump_generation(timeout_s=self._store_timeout_s)
        REGISTRY_GENERATION.set(generation)
        if self._notifier is None:
            # Without ZooKeeper (watching turned off) nothing can be waited for: the change is
            # reported as not known to be complete; the servers find it at their next poll.
            return Propagation(generation=generation, servers=0)
        await asyncio.to_thread(self._notifier.announce, generation)
        wait_s = min(self._wait_s, max(deadline - loop.time(), 0.0))
        propagation = await asyncio.to_thread(self._notifier.await_generation, generation, wait_s)
        ACTIVATION_LAGGING_SERVERS.set(len(propagation.lagging))
        if propagation.complete and propagation.servers:
            # A change that timed out has no propagation time yet: it shows as lagging servers.
            ACTIVATION_PROPAGATION_SECONDS.observe(loop.time() - started)
        return propagation


class RouteFollower(Protocol):
    """What the prediction side of propagation needs of a server's version router."""

    @property
    def generation(self) -> int | None: ...

    def wake(self) -> None: ...

    async def report_to(self, report: Callable[[int], Awaitable[None]]) -> None: ...


async def follow_changes(
    notifier: RegistryNotifier | None, router: RouteFollower, address: str
) -> ServerPresence | None:
    """Wake the router when ZooKeeper announces a change, register the server, and keep its
    routes generation in its presence znode, so that a change can wait for this server.
    None when watching is off or ZooKeeper is unreachable (the router still polls)."""
    if notifier is None:
        return None
    notifier.watch(router.wake)
    presence = await asyncio.to_thread(notifier.register, address, router.generation or 0)
    if presence is None:
        log.warning("not registered in ZooKeeper: switches will not wait for this server")
        return None

    async def report(generation: int) -> None:
        await asyncio.to_thread(presence.report, generation)

    await router.report_to(report)
    return presence
