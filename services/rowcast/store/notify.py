"""Push of registry changes through the HBase cluster's own ZooKeeper, and their acknowledgement.

A pure ZooKeeper adapter: the sequence it serves (bump, announce, wait) is in
rowcast/propagation.py. Every activation, rollback and alias change bumps the registry
generation cell in HBase (the source of truth). The process that bumps it then sets one znode,
`ZNODE`, to the new generation; prediction servers hold a ZooKeeper data watch on it and reload
their routes as soon as it fires, instead of waiting for their next poll. The poll of the
generation cell stays as the safety net: a notification lost to a ZooKeeper outage costs one
poll interval, never a wrong answer. ZooKeeper being unreachable is logged, never an error for
the caller.

Each watching prediction server also keeps an ephemeral znode under `SERVERS` holding the
generation its routes are at (`ServerPresence`), rewritten after every reload. The process
that made a change waits for every registered server to reach its generation
(`RegistryNotifier.await_generation`): when that completes, every request any of them starts
from then on is answered with the change in place. A server that dies takes its znode with
it when its ZooKeeper session expires (`SESSION_TIMEOUT_S`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import kazoo.protocol.connection
import kazoo.retry
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.recipe.watchers import DataWatch

from rowcast.config import HBaseSettings
from rowcast.core.records import Propagation
from rowcast.store.client import ZOOKEEPER_ERRORS

log = logging.getLogger(__name__)

# kazoo draws ping and retry jitter from the global `random` module, in its own threads, for
# the life of a connection. Give it a generator of its own, so that it never perturbs the
# process-wide random state that other code (and hypothesis) owns.
kazoo.protocol.connection.random = random.Random()
kazoo.retry.random = random.Random()

ZNODE: Final = "/rowcast/registry-generation"
#: Parent of the prediction servers' presence znodes (ephemeral, sequential).
SERVERS: Final = "/rowcast/prediction-servers"
#: ZooKeeper session timeout, seconds.
SESSION_TIMEOUT_S: Final = 10.0

_ERRORS = ZOOKEEPER_ERRORS


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

    def register(self, address: str, generation: int) -> ServerPresence | None:
        """Announce a prediction server (blocking, a few ms; never raises): None when
        ZooKeeper is not connected, and then no change waits for this server."""
        presence = ServerPresence(self._zk, address)
        return presence if presence.report(generation) else None

    def await_generation(self, generation: int, timeout_s: float) -> Propagation:
        """Wait (blocking) until every registered prediction server has reloaded its routes at
        `generation` or later, or `timeout_s` has passed; say how far the change got."""
        started = time.monotonic()
        deadline = started + timeout_s
        pause = 0.005
        while True:
            servers = self._server_generations()
            lagging = sorted(a for a, g in servers.items() if g < generation)
            now = time.monotonic()
            if not lagging or now >= deadline:
                return Propagation(
                    generation=generation,
                    servers=len(servers),
                    lagging=lagging,
                    complete=self._zk.connected and not lagging,
                    waited_s=now - started,
                )
            time.sleep(min(pause, max(deadline - now, 0.0)))
            pause = min(pause * 2, 0.05)

    def _server_generations(self) -> dict[str, int]:
        """Address -> routes generation of each registered server ({} when unknown)."""
        if not self._zk.connected:
            return {}
        found: dict[str, int] = {}
        try:
            children = self._zk.get_children(SERVERS)
        except NoNodeError:
            return {}
        except _ERRORS as exc:
            log.warning("could not list prediction servers: %s", exc)
            return {}
        for child in children:
            try:
                data, _ = self._zk.get(f"{SERVERS}/{child}")
                doc = json.loads(data)
                found[f"{doc['address']} (pid {doc['pid']})"] = int(doc["generation"])
            except NoNodeError:
                continue  # the server went away while we looked
            except (*_ERRORS, ValueError, KeyError) as exc:
                log.warning("unreadable presence %s: %s", child, exc)
        return found

    def stop(self) -> None:
        if self._started:
            with contextlib.suppress(*_ERRORS):
                self._zk.stop()
                self._zk.close()


class ServerPresence:
    """One prediction server's ephemeral znode: the generation its routes are at."""

    def __init__(self, zk: KazooClient, address: str) -> None:
        self._zk = zk
        self._address = address
        self._path: str | None = None
        self._generation = 0
        self._lock = threading.Lock()

    def report(self, generation: int) -> bool:
        """Record that the routes are at `generation` (blocking; never raises). Re-creates
        the znode when the ZooKeeper session that owned it expired. False when not recorded."""
        with self._lock:
            self._generation = max(self._generation, generation)
            data = json.dumps(
                {"address": self._address, "pid": os.getpid(), "generation": self._generation}
            ).encode()
            if not self._zk.connected:
                return False
            try:
                if self._path is not None:
                    try:
                        self._zk.set(self._path, data)
                        return True
                    except NoNodeError:
                        log.info("presence znode %s expired: registering again", self._path)
                self._path = self._zk.create(
                    f"{SERVERS}/server-", data, ephemeral=True, sequence=True, makepath=True
                )
                return True
            except _ERRORS as exc:
                log.warning("could not record routes generation %d: %s", generation, exc)
                return False

    def withdraw(self) -> None:
        """Remove the znode at once (a graceful stop: changes stop waiting for this server)."""
        with self._lock:
            if self._path is not None and self._zk.connected:
                with contextlib.suppress(*_ERRORS):
                    self._zk.delete(self._path)
            self._path = None


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
