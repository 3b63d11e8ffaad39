"""Page sizes and offset page tokens for the small listings (models, versions)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TypeVar

from rowcast.errors import InvalidArgument

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """AIP-158: 0 means the default; larger than the maximum is coerced down; negative is bad."""
    if requested < 0:
        raise InvalidArgument.field("page_size", f"must not be negative, got {requested}")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _offset_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _offset(token: str) -> int:
    if not token:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "o" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidArgument.field("page_token", "is not a token this service issued")


def paginate(items: Sequence[T], size: int, token: str) -> tuple[list[T], str]:
    """One page of items and the token of the next page ('' on the last page)."""
    start = _offset(token)
    end = start + page_size(size)
    return list(items[start:end]), _offset_token(end) if end < len(items) else ""
