"""The audit chain: each prediction server links the decisions it makes into a chain of HMAC
tags, so that a record changed, removed or inserted behind rowcast's back (directly in HBase)
is found by `rowcast audit verify`.

A record's tag is `HMAC-SHA256(key, previous tag || canonical content)`; the previous tag of
sequence 0 is 32 zero bytes. The canonical content is what the audit table stores of the
decision, encoded so that it can be recomputed exactly from the stored row (features as sorted
JSON with every number a float, the output as `repr`). Augmentations are not part of it: they
are added after the decision, by other callers, and are history of their own.

Pure: no I/O, no clock. `Chain` hands out links; `verify` walks stored decisions.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import json.encoder
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rowcast.core.records import ChainLink, Decision

TAG_BYTES = 32
GENESIS = bytes(TAG_BYTES)
#: Shortest key accepted (an HMAC-SHA256 key shorter than this weakens the tag).
MIN_KEY_BYTES = 16


#: How JSON writes a string (ASCII only, escaped): the C function json itself uses.
_string = json.encoder.encode_basestring_ascii
_INFINITY = float("inf")


def _number(x: float) -> str:
    """A float as json writes it (allow_nan: NaN and the infinities by name)."""
    if x - x == 0.0:  # finite
        return float.__repr__(x)
    if x != x:
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def canonical(d: Decision) -> bytes:
    """The decision's stored content as bytes, exactly recomputable from its audit row.

    The bytes of `json.dumps([...], sort_keys=True, separators=(",", ":"))` of the stored
    fields (features as sorted JSON with every number a float, the output as `repr`), written
    directly: json's encoder costs more to set up per call than this takes in all (4.2 us of
    a decision's 12.5 us of linking on the hot path, docs/benchmarks.md).
    tests/unit/test_audit_chain.py holds the two to the same bytes, so records chained by
    earlier versions still verify."""
    features = d.features
    pairs = []
    for name in sorted(features):
        v = features[name]
        pairs.append(
            _string(name) + ":" + (_string(v) if isinstance(v, str) else _number(float(v)))
        )
    return "".join(
        (
            "[", _string(d.decision_id), ",", _string(d.model), ",",
            int.__repr__(d.model_version), ",", _string(d.subject), ",{", ",".join(pairs), "},",
            _string(d.key_hex), ",", _string(repr(float(d.output))), ",",
            _string(d.source.value), ",", int.__repr__(d.decide_time_ms), "]",
        )
    ).encode()  # fmt: skip


class Hmac:
    """HMAC-SHA256 under one key with the key's inner and outer blocks hashed once (RFC 2104):
    each tag then costs two copies and two short updates. `hmac.digest` sets the key up
    again on every call (2.8 against 1.1 us here); the tags are the same bytes
    (tests/unit/test_audit_chain.py)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def tag(key: bytes, previous: bytes, content: bytes) -> bytes:
    """The tag of a record whose predecessor's tag is `previous`."""
    return hmac.digest(key, previous + content, "sha256")


def same_record(a: Decision, b: Decision) -> bool:
    """Whether two decisions are the same audit record: same canonical content and same chain
    link (augmentations aside). A replay is the same record; anything else under the same id is
    a conflict."""
    return a.chain == b.chain and canonical(a) == canonical(b)


@dataclass
class Chain:
    """One prediction server's chain: hands out the links of the next decisions, and advances
    only when told that they were kept (a batch the spool refused leaves no gap)."""

    key: bytes
    chain_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    next_sequence: int = 0
    last_tag: bytes = GENESIS

    _hmac: Hmac = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise ValueError(f"the audit chain key must have at least {MIN_KEY_BYTES} bytes")
        self._hmac = Hmac(self.key)

    def link(self, decisions: Sequence[Decision]) -> tuple[list[Decision], Chain]:
        """The decisions with their links, and the chain as it is once they are kept (pass it
        to `advance`)."""
        sequence, previous = self.next_sequence, self.last_tag
        digest, chain_id = self._hmac.digest, self.chain_id
        linked: list[Decision] = []
        for d in decisions:
            t = digest(previous + canonical(d))
            linked.append(_with_link(d, ChainLink(chain_id, sequence, t.hex())))
            sequence, previous = sequence + 1, t
        return linked, self._at(sequence, previous)

    def _at(self, next_sequence: int, last_tag: bytes) -> Chain:
        """This chain at a later state. Not `dataclasses.replace`: that re-runs `__init__`
        and the key set-up (1.6 us of each call's linking); the key is the same one."""
        later = object.__new__(Chain)
        later.__dict__.update(self.__dict__)
        later.next_sequence, later.last_tag = next_sequence, last_tag
        return later

    def advance(self, to: Chain) -> None:
        """Take the state `link` returned: the linked decisions were kept."""
        if to.chain_id != self.chain_id or to.next_sequence < self.next_sequence:
            raise ValueError("not a later state of this chain")
        self.next_sequence, self.last_tag = to.next_sequence, to.last_tag


def _with_link(d: Decision, link: ChainLink) -> Decision:
    """`dataclasses.replace(d, chain=link)` without its cost (it re-runs `__init__` through
    `fields()`: a third of a decision's linking time on the hot path). Decision has no
    `__post_init__` and no slots, so a copy of its fields is the same object."""
    copy = object.__new__(Decision)
    copy.__dict__.update(d.__dict__)
    copy.__dict__["chain"] = link
    return copy


class Problem(enum.Enum):
    """What `verify` can find wrong with a stored record."""

    #: The record's tag does not match its content and its predecessor's tag.
    CHANGED = "changed"
    #: Sequences are missing before this record.
    REMOVED = "removed"
    #: No link, a place in its chain that another record holds, or a chain none of whose
    #: records verifies.
    INSERTED = "inserted"


@dataclass(frozen=True)
class Finding:
    """One problem found, at the decision that shows it."""

    decision_id: str
    problem: Problem
    detail: str


@dataclass
class Report:
    """What `verify` found: counts and each problem."""

    records: int = 0
    chains: int = 0
    #: Records whose predecessor lies before the decisions given (a time window): their tag
    #: cannot be checked.
    unanchored: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def verify(
    key: bytes,
    decisions: Iterable[Decision],
    *,
    checked: Callable[[Decision], bool] | None = None,
    from_start: bool = True,
) -> Report:
    """Check stored decisions against their chains.

    Each chain's records are sorted by sequence, and a record's tag is recomputed from its own
    content and its predecessor's *stored* tag, so that a change shows at the record changed
    (and, when its tag was changed too, at the next one), not at every later one. A missing
    sequence is a removal; two records at one place are an insertion (the one that verifies is
    kept as the predecessor of the next); a record without a link is an insertion too.

    `checked`: which decisions to report on and count (the others only serve as predecessors);
    None for all. `from_start`: the decisions hold every chain from its beginning; when False
    (a time window), a chain's first record given has no predecessor to be checked against
    (counted as unanchored) unless it is the chain's first. A chain's tail cut off cannot be
    found: nothing after it says it existed.
    """
    report = Report()
    chains: dict[str, list[Decision]] = defaultdict(list)
    wanted = checked or (lambda _: True)
    for d in decisions:
        if d.chain is not None:
            chains[d.chain.chain_id].append(d)
        elif wanted(d):
            report.records += 1
            report.findings.append(Finding(d.decision_id, Problem.INSERTED, "no chain link"))
    for chain_id, members in chains.items():
        mine = [d for d in members if wanted(d)]
        if not mine:
            continue
        report.chains += 1
        report.records += len(mine)
        _verify_chain(key, chain_id, members, wanted, from_start, report)
    return report


def _verify_chain(
    key: bytes,
    chain_id: str,
    members: list[Decision],
    wanted: Callable[[Decision], bool],
    from_start: bool,
    report: Report,
) -> None:
    places: dict[int, list[Decision]] = defaultdict(list)
    for d in members:
        places[_link(d).sequence].append(d)
    name = f"chain {chain_id[:12]}"
    expected = 0 if from_start else min(places)
    # Tags the next record may have been computed from (several when a place is contested;
    # none when its predecessor is missing).
    previous: list[bytes] = [GENESIS] if expected == 0 else []
    findings: list[tuple[Decision, Problem, str]] = []
    verified = checkable = 0
    for sequence in sorted(places):
        here = places[sequence]
        if sequence < expected:
            findings += [(d, Problem.INSERTED, f"{name}: bad sequence {sequence}") for d in here]
            continue
        if sequence > expected:
            missing = (
                f"#{expected}" if sequence == expected + 1 else f"#{expected}..#{sequence - 1}"
            )
            findings.append(
                (here[0], Problem.REMOVED, f"{name}: {missing} missing before this record")
            )
            previous = []
        valid = [d for d in here if _tag_matches(key, previous, d)]
        good = {id(d) for d in valid}
        if previous:
            checkable += len(here)
            verified += len(valid)
        elif sequence == expected and not from_start:
            report.unanchored += sum(1 for d in here if wanted(d))
        for d in here:
            if id(d) in good:
                continue
            if len(here) > 1:
                detail = f"{name} #{sequence}: {len(here)} records hold this place"
                findings.append((d, Problem.INSERTED, detail + "; this one's tag does not match"))
            elif previous:
                detail = f"{name} #{sequence}: the tag does not match the content"
                findings.append((d, Problem.CHANGED, detail))
        previous = [bytes.fromhex(_link(d).tag) for d in (valid or here) if _hex_ok(d)]
        expected = sequence + 1
    if not verified and (checkable or from_start):
        findings = [(d, Problem.INSERTED, f"{name}: no record of it verifies") for d in members]
    report.findings += [Finding(d.decision_id, p, text) for d, p, text in findings if wanted(d)]


def _link(d: Decision) -> ChainLink:
    assert d.chain is not None
    return d.chain


def _hex_ok(d: Decision) -> bool:
    try:
        return len(bytes.fromhex(_link(d).tag)) == TAG_BYTES
    except ValueError:
        return False


def _tag_matches(key: bytes, previous: list[bytes], d: Decision) -> bool:
    if not previous or not _hex_ok(d):
        return False
    stored = bytes.fromhex(_link(d).tag)
    content = canonical(d)
    return any(hmac.compare_digest(stored, tag(key, p, content)) for p in previous)
