"""Plain typed records that the store, the jobs and the servicers pass around.

Protobuf types stop at the servicer edge; everything below works on these.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from rowcast.core.signature import RawValue, Signature
from rowcast.errors import InvalidArgument, quoted

MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
#: Aliases the registry manages itself (ActivateVersion, RollbackModel).
RESERVED_ALIASES = frozenset({"current", "previous"})


def check_alias(alias: str, field_name: str = "alias", *, user: bool = True) -> str:
    """Aliases: a lower-case letter, then letters, digits, `-` or `_`; users may not set the
    reserved ones."""
    if not alias:
        raise InvalidArgument.field(field_name, "is required")
    if not ALIAS_NAME.match(alias):
        raise InvalidArgument.field(field_name, f"{quoted(alias)} is not an alias name")
    if user and alias in RESERVED_ALIASES:
        raise InvalidArgument.field(
            field_name, f"{alias!r} is managed by ActivateVersion and RollbackModel"
        )
    return alias


def check_model_name(name: str, field_name: str = "model") -> str:
    """Model names become part of table names: lower-case letters, digits, underscores."""
    if not name:
        raise InvalidArgument.field(field_name, "is required")
    if not MODEL_NAME.match(name):
        raise InvalidArgument.field(
            field_name,
            f"{quoted(name)} is not a model name (a lower-case letter, then up to 62 lower-case "
            "letters, digits or underscores)",
        )
    return name


MAX_SUBJECT_CHARS = 256


def check_subject(subject: str) -> str:
    """Subjects are indexed in row keys: bounded length, no NUL (the key separator)."""
    if len(subject) > MAX_SUBJECT_CHARS:
        raise InvalidArgument.field("subject", f"at most {MAX_SUBJECT_CHARS} characters")
    if "\x00" in subject:
        raise InvalidArgument.field("subject", "must not contain NUL characters")
    return subject


class OutputKind(enum.Enum):
    PROBABILITY = "probability"
    REGRESSION = "regression"


class VersionState(enum.Enum):
    REGISTERED = "REGISTERED"
    MATERIALIZING = "MATERIALIZING"
    READY = "READY"
    FAILED = "FAILED"
    RETIRED = "RETIRED"


class Source(enum.Enum):
    """Where a served output came from."""

    HBASE = "hbase"
    CACHE = "cache"
    FALLBACK = "fallback"


class FallbackRule(enum.Enum):
    """Why an answer is not simply the stored output for the caller's exact input."""

    #: A numeric feature lay outside the training range and was binned into the edge bin.
    CLAMPED_TO_EDGE_BIN = "clamped_to_edge_bin"
    #: The version's table had no row for the key: the configured default was served.
    MISSING_ROW_DEFAULT = "missing_row_default"


class AugmentationSource(enum.Enum):
    PERSON = "person"
    PROGRAM = "program"


class AugmentationState(enum.Enum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    signature: Signature
    output_kind: OutputKind
    output_description: str
    current_version: int
    previous_version: int
    create_time_ms: int
    #: Salt buckets of the row keys of every version table of this model.
    salt_buckets: int
    #: Every alias (current and previous included) and the version it names.
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: int
    state: VersionState
    table: str
    row_count: int
    creator: str
    metrics: dict[str, float]
    create_time_ms: int
    update_time_ms: int
    #: Watermark of materialisation: every grid cell below this flat index is written.
    rows_written: int = 0
    #: XOR of crc32(key + output) over the cells below the watermark (see jobs/workers.py).
    checksum_done: int = 0
    failure_reason: str = ""
    #: Shipped data set whose held-out split measures the flattening fidelity ("" for none).
    evaluation_dataset: str = ""
    #: Who retired it and when (RETIRED only), and whether its table is dropped yet.
    retired_by: str = ""
    retire_time_ms: int = 0
    table_dropped: bool = False


class HistoryKind(enum.Enum):
    """What an entry of a model's history records."""

    ACTIVATION = "activation"
    ROLLBACK = "rollback"
    RETIREMENT = "retirement"
    DELETION = "deletion"


@dataclass(frozen=True)
class Activation:
    """One entry of a model's history (activations, rollbacks, retirements, its deletion)."""

    model: str
    from_version: int
    to_version: int
    actor: str
    reason: str
    time_ms: int
    kind: HistoryKind = HistoryKind.ACTIVATION


@dataclass(frozen=True)
class Augmentation:
    augmentation_id: str
    better_output: float
    source: AugmentationSource
    actor: str
    reason: str
    state: AugmentationState
    create_time_ms: int
    #: For an approval or a rejection: the id of the proposal it reviews ("" for a proposal).
    reviewed_augmentation_id: str = ""


@dataclass(frozen=True)
class ChainLink:
    """A decision's place in its prediction server's audit chain (core/chain.py)."""

    #: One chain per prediction server process start (uuid4 hex).
    chain_id: str
    #: Position in the chain, from 0, without gaps.
    sequence: int
    #: HMAC-SHA256 over the previous record's tag and this record's canonical content, hex.
    tag: str


@dataclass(frozen=True)
class Decision:
    decision_id: str
    model: str
    model_version: int
    subject: str
    features: dict[str, RawValue]
    key_hex: str
    output: float
    source: Source
    decide_time_ms: int
    augmentations: tuple[Augmentation, ...] = field(default=())
    #: None for a decision recorded by a server that does not chain.
    chain: ChainLink | None = None

    @classmethod
    def made(
        cls,
        decision_id: str,
        model: str,
        model_version: int,
        subject: str,
        features: dict[str, RawValue],
        key_hex: str,
        output: float,
        source: Source,
        decide_time_ms: int,
    ) -> Decision:
        """A decision just made (no augmentations, not yet chained): the same record as
        `Decision(...)`, without the frozen `__init__`'s `object.__setattr__` per field
        (2.2 against 0.7 us; every Predict makes one). tests/unit/test_records.py keeps the
        two the same."""
        d = object.__new__(cls)
        d.__dict__.update(
            decision_id=decision_id,
            model=model,
            model_version=model_version,
            subject=subject,
            features=features,
            key_hex=key_hex,
            output=output,
            source=source,
            decide_time_ms=decide_time_ms,
            augmentations=(),
            chain=None,
        )
        return d


@dataclass(frozen=True)
class PredictionRow:
    """One stored answer: the output and the version that computed it."""

    output: float
    version: int


@dataclass(frozen=True)
class Answer:
    """What a prediction server answers for one input (its decision goes to the audit)."""

    output: float
    #: The version whose table answered (the active one when the default was served).
    model_version: int
    decision_id: str
    source: Source
    #: The input's row key, as hex.
    key_hex: str
    #: Features whose value lay outside the training range, in signature order.
    clamped_features: tuple[str, ...]
    fallback_rules: tuple[FallbackRule, ...]

    @classmethod
    def of(
        cls, decision: Decision, clamped: tuple[str, ...], rules: tuple[FallbackRule, ...]
    ) -> Answer:
        """The answer that tells a decision to its caller: the same record as `Answer(...)`
        built without the frozen `__init__` (as `Decision.made`)."""
        a = object.__new__(cls)
        a.__dict__.update(
            output=decision.output,
            model_version=decision.model_version,
            decision_id=decision.decision_id,
            source=decision.source,
            key_hex=decision.key_hex,
            clamped_features=clamped,
            fallback_rules=rules,
        )
        return a


@dataclass(frozen=True)
class Propagation:
    """How far one registry change had reached the running prediction servers."""

    #: The registry generation the change produced.
    generation: int
    #: Prediction servers registered in ZooKeeper when the wait ended.
    servers: int
    #: Those still below `generation` when the wait ended (address and pid).
    lagging: list[str] = field(default_factory=list)
    #: Every registered server serves the change (False when ZooKeeper is not in use).
    complete: bool = False
    waited_s: float = 0.0


@dataclass(frozen=True)
class VersionCount:
    """Decisions one model version served, by the state of their latest augmentation."""

    version: int
    decisions: int
    #: Latest augmentation state -> decisions; decisions absent here have none.
    by_state: dict[AugmentationState, int]

    @property
    def unaugmented(self) -> int:
        return self.decisions - sum(self.by_state.values())


@dataclass(frozen=True)
class RecordResult:
    """What storing a batch of decisions did: each is written once, and a decision id already
    stored is either the same record again (replayed, a no-op) or a conflict (never applied)."""

    written: int
    replayed: int
    #: (position in the batch, decision id) of each decision refused as a conflict.
    conflicts: tuple[tuple[int, str], ...] = ()
