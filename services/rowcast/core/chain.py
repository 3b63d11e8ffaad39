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
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from rowcast.core.records import ChainLink, Decision

TAG_BYTES = 32
GENESIS = bytes(TAG_BYTES)
#: Shortest key accepted (an HMAC-SHA256 key shorter than this weakens the tag).
MIN_KEY_BYTES = 16


#: `json.dumps(..., sort_keys=True, separators=(",", ":"))` builds an encoder per call (4 us
#: of a ~430 us Predict, docs/benchmarks.md); one encoder with the same options writes the
#: same bytes.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical(d: Decision) -> bytes:
    """The decision's stored content as bytes, exactly recomputable from its audit row."""
    features = {k: v if isinstance(v, str) else float(v) for k, v in d.features.items()}
    return _CANONICAL.encode(
        [
            d.decision_id,
            d.model,
            d.model_version,
            d.subject,
            features,
            d.key_hex,
            repr(float(d.output)),
            d.source.value,
            d.decide_time_ms,
        ]
    ).encode()


def tag(key: bytes, previous: bytes, content: bytes) -> bytes:
    """The tag of a record whose predecessor's tag is `previous`."""
    return hmac.new(key, previous + content, hashlib.sha256).digest()


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

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise ValueError(f"the audit chain key must have at least {MIN_KEY_BYTES} bytes")

    def link(self, decisions: Sequence[Decision]) -> tuple[list[Decision], Chain]:
        """The decisions with their links, and the chain as it is once they are kept (pass it
        to `advance`)."""
        sequence, previous = self.next_sequence, self.last_tag
        linked: list[Decision] = []
        for d in decisions:
            t = tag(self.key, previous, canonical(d))
            linked.append(_with_link(d, ChainLink(self.chain_id, sequence, t.hex())))
            sequence, previous = sequence + 1, t
        return linked, replace(self, next_sequence=sequence, last_tag=previous)

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
