"""The audit chain key: 32 random bytes, hex in one file (ROWCAST_HOME/auth/audit-chain.key)
that every prediction server and `rowcast audit verify` share (docs/audit.md).

A prediction server creates the file when it is missing. Servers starting together race for
it: the key is written to a private temporary file first and then hard-linked into place, which
fails when another won, so nobody ever reads a half-written key and every server ends up with
the winner's.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

KEY_BYTES = 32


class ChainKeyError(Exception):
    """The key file is missing (and was not to be created), unreadable or malformed."""


def load_chain_key(path: Path, *, create: bool = True) -> bytes:
    """The key in `path`; with `create`, a new random key written there first when the file
    does not exist (mode 0600, its directory 0700 when created)."""
    if create and not path.exists():
        _create(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise ChainKeyError(
            f"no audit chain key at {path}: the prediction servers create it when they start; "
            "copy theirs here"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ChainKeyError(f"cannot read the audit chain key {path}: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ChainKeyError(f"{path} does not hold a key of {KEY_BYTES} bytes in hex")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ChainKeyError(f"{path} is readable by others: chmod 600 it (or make a new key)")
    return key


def _create(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(KEY_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another server created it first
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
