"""Push of registry changes through the HBase cluster's own ZooKeeper.

Every activation, rollback and alias change bumps the registry generation cell in HBase (the
source of truth). The process that bumps it then sets one znode, `ZNODE`, to the new
generation; prediction servers hold a ZooKeeper data watch on it and reload their routes as
soon as it fires, instead of waiting for their next poll. The poll of the generation cell
stays as the safety net: a notification lost to a ZooKeeper outage costs one poll interval,
never a wrong answer. ZooKeeper being unreachable is logged, never an error for the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable
from typing import Any, Final

import kazoo.protocol.connection
import kazoo.retry
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.recipe.watchers import DataWatch

from rowcast.config import HBaseSettings

log = logging.getLogger(__name__)

# kazoo draws ping and retry jitter from the global `random` module, in its own threads, for
# the life of a connection. Give it a generator of its own, so that it never perturbs the
# process-wide random state that other code (and hypothesis) owns.
kazoo.protocol.connection.random = random.Random()
kazoo.retry.random = random.Random()

ZNODE: Final = "/rowcast/registry-generation"
#: ZooKeeper session timeout, seconds.
SESSION_TIMEOUT_S: Final = 10.0

_ERRORS = (KazooException, KazooTimeoutError, OSError)


class RegistryNotifier:
    """Announces and watches the registry generation in ZooKeeper (best effort, thread-safe)."""

    def __init__(self, hosts: str, connect_timeout_s: float = 2.0) -> None:
        self._hosts = hosts
        self._connect_timeout_s = connect_timeout_s
        self._zk = KazooClient(
            hosts=hosts,
            timeout=SESSION_TIMEOUT_S,
            connection_retry={"max_tries": -1, "delay": 0.2, "max_delay": 5.0},
        )
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> bool:
        """Connect; False (logged) when ZooKeeper does not answer in time. The client keeps
        reconnecting in the background either way."""
        event = self._zk.start_async()
        event.wait(self._connect_timeout_s)
        self._started = True
        if not self._zk.connected:
            log.warning("ZooKeeper %s unreachable: registry changes arrive by polling", self._hosts)
            return False
        return True

    def announce(self, generation: int) -> None:
        """Set the znode to `generation` (blocking, a few ms; never raises)."""
        if not self._zk.connected:
            return
        data = str(generation).encode()
        try:
            with self._lock:
                try:
                    self._zk.set(ZNODE, data)
                except NoNodeError:
                    with contextlib.suppress(NodeExistsError):
                        self._zk.create(ZNODE, data, makepath=True)
                        return
                    self._zk.set(ZNODE, data)
        except _ERRORS as exc:
            log.warning("could not announce registry generation %d: %s", generation, exc)

    def watch(self, on_change: Callable[[], None]) -> None:
        """Call `on_change()` (from a ZooKeeper thread) whenever the znode is set. The watch
        survives reconnects; it also fires once when it is registered. Not registered (logged)
        when ZooKeeper was unreachable at start: the process then relies on its poll."""

        def fired(data: bytes | None, stat: Any) -> None:
            on_change()

        if not self._zk.connected:
            # Registering would block until ZooKeeper is back; polling covers this process.
            log.warning("not watching %s: ZooKeeper %s is not connected", ZNODE, self._hosts)
            return
        try:
            DataWatch(self._zk, ZNODE, fired)
        except _ERRORS as exc:
            log.warning("could not watch %s: %s", ZNODE, exc)

    def stop(self) -> None:
        if self._started:
            with contextlib.suppress(*_ERRORS):
                self._zk.stop()
                self._zk.close()


async def open_notifier(hbase: HBaseSettings, enabled: bool = True) -> RegistryNotifier | None:
    """A started notifier on the HBase cluster's ZooKeeper, or None when watching is off."""
    if not enabled:
        return None
    notifier = RegistryNotifier(f"{hbase.host}:{hbase.zookeeper_port}")
    await asyncio.to_thread(notifier.start)
    return notifier


async def close_notifier(notifier: RegistryNotifier | None) -> None:
    if notifier is not None:
        await asyncio.to_thread(notifier.stop)
