"""The verdict of a chaos run: is every decision a client received on record exactly once, with
every field as the client received it?

Read straight from HBase (not through the AuditService under test), with its own parsing of
the cells and index keys:

- **lost**: no row in `rowcast:audit` for an acknowledged decision id.
- **mismatched**: a row, but a field differs from what the client sent or received (model,
  version, subject, inputs, key, output, source, time), a cell's timestamp is not the
  decision's time as `core.keys.cell_timestamp` truncates it (a write that was not a replay
  of the same cells), or one of its index rows (subject, version, input key) is missing.
- **duplicated**: the row key is the decision id, so a decision cannot have two rows; what can
  be duplicated is everything around it. A decision counts as duplicated when its id was
  returned to more than one request, when its request is on record more than once (every
  request has a subject of its own, so the subject index must list exactly one decision
  under it), or when the version or input-key index lists its id more than once (under two
  versions or two keys).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import happybase

from rowcast.core import keys as ik
from rowcast.core.keys import DECISION_ID_BYTES, audit_key, cell_timestamp, decision_time_ms
from rowcast.store.client import HBaseClient
from rowcast.store.schema import (
    AUDIT,
    AUDIT_BY_KEY,
    AUDIT_BY_SUBJECT,
    AUDIT_BY_VERSION,
    AUDIT_SALT_BUCKETS,
)
from rowcast_dev.chaos.load import Received

_KEYS_ONLY = "KeyOnlyFilter() AND FirstKeyOnlyFilter()"
_SCAN_BATCH = 5000
_GET_BATCH = 1000
#: Ids of lost, mismatched and duplicated decisions kept in the report, per kind.
EXAMPLES = 20
#: Deadline of each read of the check (it scans a whole run's decisions and index rows).
CHECK_TIMEOUT_S = 120.0


@dataclass
class CheckResult:
    acknowledged: int = 0
    found: int = 0
    lost: int = 0
    mismatched: int = 0
    duplicated: int = 0
    #: Why decisions count as duplicated: reason -> decisions.
    duplicates: dict[str, int] = field(default_factory=dict)
    #: Which fields differ: field -> decisions.
    mismatches: dict[str, int] = field(default_factory=dict)
    #: Decisions of this run's requests on record that no client received (a server killed
    #: after spooling but before answering, a deadline): expected under faults, not an error.
    unacknowledged_on_record: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "acknowledged": self.acknowledged,
            "found": self.found,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "mismatched": self.mismatched,
            "duplicates": self.duplicates,
            "mismatches": self.mismatches,
            "unacknowledged_on_record": self.unacknowledged_on_record,
            "examples": self.examples,
        }


@dataclass(frozen=True)
class IndexEntries:
    """What the three index tables hold for this run's decisions."""

    #: subject -> decision ids listed under it (only subjects of this run).
    by_subject: dict[str, list[str]]
    #: decision id -> versions it is listed under.
    by_version: dict[str, list[int]]
    #: decision id -> input keys (hex) it is listed under.
    by_key: dict[str, list[str]]


async def check(
    client: HBaseClient,
    model: str,
    run_id: str,
    received: Sequence[Received],
    window_ms: tuple[int, int],
) -> CheckResult:
    """Check the received decisions against the audit tables; window_ms bounds the decision
    times of this run (index entries outside it belong to other runs)."""
    ids = [r.decision_id for r in received]
    rows = await client.run(lambda conn: _audit_rows(conn, ids), timeout_s=CHECK_TIMEOUT_S)
    index = await client.run(
        lambda conn: _index_entries(conn, model, run_id, window_ms), timeout_s=CHECK_TIMEOUT_S
    )
    return judge(model, received, rows, index)


def judge(
    model: str,
    received: Sequence[Received],
    rows: dict[str, dict[bytes, tuple[bytes, int]]],
    index: IndexEntries,
) -> CheckResult:
    result = CheckResult(acknowledged=len(received))
    by_id: dict[str, list[Received]] = defaultdict(list)
    for r in received:
        by_id[r.decision_id].append(r)
    duplicated: dict[str, set[str]] = defaultdict(set)
    mismatched: dict[str, set[str]] = defaultdict(set)
    lost: list[str] = []
    for decision_id, answers in by_id.items():
        if len(answers) > 1:
            duplicated["id_received_twice"].add(decision_id)
    for r in received:
        row = rows.get(r.decision_id)
        if row is None:
            lost.append(r.decision_id)
            continue
        for name in _differences(model, r, row):
            mismatched[name].add(r.decision_id)
        listed = index.by_subject.get(r.subject, [])
        if r.decision_id not in listed:
            mismatched["subject_index"].add(r.decision_id)
        if len(listed) > 1:
            duplicated["request_on_record_twice"].add(r.decision_id)
        versions = index.by_version.get(r.decision_id, [])
        if r.model_version not in versions:
            mismatched["version_index"].add(r.decision_id)
        if len(versions) > 1:
            duplicated["version_index_twice"].add(r.decision_id)
        keys = index.by_key.get(r.decision_id, [])
        if r.key not in keys:
            mismatched["key_index"].add(r.decision_id)
        if len(keys) > 1:
            duplicated["key_index_twice"].add(r.decision_id)
    acknowledged_ids = set(by_id)
    result.unacknowledged_on_record = sum(
        1 for ids in index.by_subject.values() for i in ids if i not in acknowledged_ids
    )
    all_duplicated = set().union(*duplicated.values()) if duplicated else set()
    all_mismatched = set().union(*mismatched.values()) if mismatched else set()
    result.lost = len(lost)
    result.duplicated = len(all_duplicated)
    result.mismatched = len(all_mismatched)
    result.found = (
        len(received) - result.lost - sum(1 for r in received if r.decision_id in all_mismatched)
    )
    result.duplicates = {k: len(v) for k, v in sorted(duplicated.items())}
    result.mismatches = {k: len(v) for k, v in sorted(mismatched.items())}
    result.examples = {
        name: sorted(ids)[:EXAMPLES]
        for name, ids in (
            ("lost", set(lost)),
            ("duplicated", all_duplicated),
            ("mismatched", all_mismatched),
        )
        if ids
    }
    return result


def _differences(model: str, r: Received, row: dict[bytes, tuple[bytes, int]]) -> list[str]:
    """Names of the fields of an audit row that differ from what the client received."""
    time_ms = decision_time_ms(r.decision_id)

    def text(column: bytes) -> str | None:
        cell = row.get(column)
        return cell[0].decode() if cell is not None else None

    expected: dict[str, tuple[object, object]] = {
        "id": (text(b"d:id"), r.decision_id),
        "model": (text(b"d:model"), model),
        "version": (text(b"d:version"), str(r.model_version)),
        "subject": (text(b"d:subject"), r.subject),
        "key": (text(b"d:key"), r.key),
        "source": (text(b"d:source"), r.source),
        "time": (text(b"d:time"), str(time_ms)),
    }
    wrong = [name for name, (got, want) in expected.items() if got != want]
    features = text(b"d:features")
    if features is None or json.loads(features) != r.features:
        wrong.append("inputs")
    output = text(b"d:output")
    if output is None or float(output) != r.output:
        wrong.append("output")
    if any(ts != cell_timestamp(time_ms) for col, (_, ts) in row.items() if col.startswith(b"d:")):
        wrong.append("cell_timestamp")
    return wrong


def _audit_rows(
    conn: happybase.Connection, ids: Iterable[str]
) -> dict[str, dict[bytes, tuple[bytes, int]]]:
    """decision id -> its audit row's decision cells (value, timestamp), for rows that exist."""
    unique = sorted(set(ids))
    table = conn.table(AUDIT)
    found: dict[str, dict[bytes, tuple[bytes, int]]] = {}
    for start in range(0, len(unique), _GET_BATCH):
        chunk = unique[start : start + _GET_BATCH]
        keys = {audit_key(i, AUDIT_SALT_BUCKETS): i for i in chunk}
        for key, row in table.rows(list(keys), columns=[b"d"], include_timestamp=True):
            if b"d:id" in row:
                found[keys[key]] = row
    return found


def _scan_keys(conn: happybase.Connection, table: str, **bounds: bytes) -> Iterable[bytes]:
    for key, _ in conn.table(table).scan(filter=_KEYS_ONLY, batch_size=_SCAN_BATCH, **bounds):
        yield key


def _index_entries(
    conn: happybase.Connection, model: str, run_id: str, window_ms: tuple[int, int]
) -> IndexEntries:
    lo, hi = window_ms

    def in_window(decision_id: str) -> bool:
        return lo <= decision_time_ms(decision_id) < hi

    by_subject: dict[str, list[str]] = defaultdict(list)
    prefix = f"{run_id}-".encode()
    # Subjects are salted by their own bytes: the run's subjects are all over the table.
    for key in _scan_keys(conn, AUDIT_BY_SUBJECT):
        subject = key[1 : -(DECISION_ID_BYTES + 1)]
        if subject.startswith(prefix) and key[-(DECISION_ID_BYTES + 1)] == 0:
            by_subject[subject.decode()].append(ik.id_from_index_key(key))

    by_version: dict[str, list[int]] = defaultdict(list)
    for bucket in range(AUDIT_SALT_BUCKETS):
        for key in _scan_keys(conn, AUDIT_BY_VERSION, row_prefix=ik.version_prefix(bucket, model)):
            decision_id = ik.id_from_index_key(key)
            if in_window(decision_id):
                by_version[decision_id].append(ik.version_of_index_key(key, model))

    by_key: dict[str, list[str]] = defaultdict(list)
    head = model.encode() + b"\x00"
    for key in _scan_keys(conn, AUDIT_BY_KEY):
        if key[1 : 1 + len(head)] != head:
            continue
        at = 1 + len(head)
        length = key[at]
        input_key = key[at + 1 : at + 1 + length]
        decision_id = ik.id_from_index_key(key)
        if len(key) == at + 1 + length + DECISION_ID_BYTES and in_window(decision_id):
            by_key[decision_id].append(input_key.hex())
    return IndexEntries(dict(by_subject), dict(by_version), dict(by_key))
