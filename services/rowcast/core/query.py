"""Which decisions a ListDecisions call selects, validated, and its page tokens."""

from __future__ import annotations

import base64
import binascii
import enum
import zlib
from dataclasses import dataclass

from rowcast.core.keys import DECISION_ID_BYTES
from rowcast.core.records import check_model_name, check_subject
from rowcast.errors import InvalidArgument

_TOKEN_VERSION = b"\x01"


class Index(enum.Enum):
    """The table a selection reads."""

    SUBJECT = "subject"
    VERSION = "version"
    INPUT_KEY = "key"
    TIME = "time"


@dataclass(frozen=True)
class DecisionQuery:
    """A selection of decisions: by subject, by model version, by input key, or all; each
    optionally within [start_ms, end_ms)."""

    subject: str = ""
    model: str = ""
    version: int = 0
    key: bytes = b""
    start_ms: int | None = None
    end_ms: int | None = None

    @property
    def index(self) -> Index:
        if self.subject:
            return Index.SUBJECT
        if self.key:
            return Index.INPUT_KEY
        if self.model:
            return Index.VERSION
        return Index.TIME

    @classmethod
    def checked(
        cls,
        *,
        subject: str = "",
        model: str = "",
        version: int = 0,
        key_hex: str = "",
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> DecisionQuery:
        """Validate a selection; INVALID_ARGUMENT names the field that does not fit."""
        if subject:
            check_subject(subject)
            for name, given in (("model", model), ("model_version", version), ("key", key_hex)):
                if given:
                    raise InvalidArgument.field(name, "cannot be combined with subject")
        if version < 0:
            raise InvalidArgument.field("model_version", f"must be positive, got {version}")
        key = b""
        if key_hex:
            try:
                key = bytes.fromhex(key_hex)
            except ValueError as exc:
                raise InvalidArgument.field("key", "is not hex (as in Decision.key)") from exc
            if not 1 <= len(key) <= 255:
                raise InvalidArgument.field("key", "is 1..255 bytes")
            if version:
                raise InvalidArgument.field("model_version", "cannot be combined with key")
        if (version or key) and not model:
            raise InvalidArgument.field("model", "is required with model_version or key")
        if model:
            check_model_name(model)
            if not version and not key:
                raise InvalidArgument.field("model_version", "is required with model (or key)")
        if start_ms is not None and end_ms is not None and end_ms <= start_ms:
            raise InvalidArgument.field("end_time", "must be after start_time")
        return cls(subject, model, version, key, start_ms, end_ms)

    def fingerprint(self) -> bytes:
        """4 bytes that differ between selections, so a token is not used with another."""
        text = f"{self.subject}\x00{self.model}\x00{self.version}\x00{self.key.hex()}"
        text += f"\x00{self.start_ms}\x00{self.end_ms}"
        return zlib.crc32(text.encode()).to_bytes(4, "big")

    def page_token(self, last_id: str) -> str:
        raw = _TOKEN_VERSION + self.fingerprint() + bytes.fromhex(last_id)
        return base64.urlsafe_b64encode(raw).decode()

    def after(self, token: str) -> bytes | None:
        """The id of the last decision of the previous page (None without a token)."""
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token.encode())
        except (binascii.Error, ValueError) as exc:
            raise InvalidArgument.field("page_token", "is not a token this service issued") from exc
        if len(raw) != 5 + DECISION_ID_BYTES or raw[:1] != _TOKEN_VERSION:
            raise InvalidArgument.field("page_token", "is not a token this service issued")
        if raw[1:5] != self.fingerprint():
            raise InvalidArgument.field("page_token", "belongs to another selection")
        return raw[5:]
