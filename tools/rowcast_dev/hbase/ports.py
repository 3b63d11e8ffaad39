"""Loopback TCP port helpers: find free ports, check one is free, and say who holds it."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
from dataclasses import replace

from rowcast.config import HBaseSettings

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    return free_ports(1)[0]


def on_free_ports(settings: HBaseSettings) -> HBaseSettings:
    """`settings` with all five HBase ports moved to free loopback ports: an HBase of its own
    for a test session, a benchmark or a chaos run, beside any other on this machine."""
    thrift, thrift2, zk, master, rs = free_ports(5)
    return replace(
        settings,
        thrift_port=thrift,
        thrift2_port=thrift2,
        zookeeper_port=zk,
        master_port=master,
        regionserver_port=rs,
    )


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports.

    All sockets stay open until every port is chosen, so the kernel cannot hand out the same
    port twice (calling `free_port()` repeatedly could).
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if a server could bind `host:port` now.

    SO_REUSEADDR mirrors what the JVM sets on its server sockets: a port left in TIME_WAIT by a
    process that just exited counts as free, one with a listener does not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


_SS_USER = re.compile(r'\("([^"]+)",pid=(\d+)')


def port_holder(port: int) -> str | None:
    """Who listens on TCP `port`, e.g. 'java (pid 3057)', from `ss`; None if unknown."""
    ss = shutil.which("ss")
    if ss is None:
        return None
    try:
        out = subprocess.run(
            [ss, "-Hltnp", f"sport = :{port}"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    holders = sorted({f"{name} (pid {pid})" for name, pid in _SS_USER.findall(out)})
    return ", ".join(holders) or None
