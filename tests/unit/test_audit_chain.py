"""The audit chain (core/chain.py) and the key file: every record changed, removed, inserted or
reordered behind rowcast's back is found, a clean chain passes, and the canonical content is
exactly what the audit table's row gives back. The prediction side links decisions only when
the spool took them."""

from __future__ import annotations

import dataclasses
import hmac
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rowcast.core.chain import Chain, Hmac, Problem, canonical, same_record, verify
from rowcast.core.keys import new_decision_id
from rowcast.core.records import ChainLink, Decision, Source
from rowcast.errors import Overloaded
from rowcast.prediction.audit_sink import AuditSink, SpoolConfig
from rowcast.security.chain_key import ChainKeyError, load_chain_key
from rowcast.store.audit import _decision_cells, _decision_from_row
from rowcast_dev.hbase.ports import free_port

KEY = bytes(range(32))


def decision(i: int, **changes: object) -> Decision:
    d = Decision(
        decision_id=new_decision_id(1_700_000_000_000 + i),
        model="credit",
        model_version=3,
        subject=f"s-{i}",
        features={"balance": float(i), "student": "No"},
        key_hex="0a000100",
        output=0.25,
        source=Source.HBASE,
        decide_time_ms=1_700_000_000_000 + i,
    )
    return dataclasses.replace(d, **changes)  # type: ignore[arg-type]


def linked(n: int, key: bytes = KEY) -> list[Decision]:
    records, _ = Chain(key).link([decision(i) for i in range(n)])
    return records


def problems(records: list[Decision], **kwargs: object) -> list[tuple[str, Problem]]:
    report = verify(KEY, records, **kwargs)  # type: ignore[arg-type]
    return [(f.decision_id, f.problem) for f in report.findings]


def test_a_clean_chain_passes() -> None:
    """Records linked by one chain, in any order, verify with no problem."""
    records = linked(20)
    report = verify(KEY, reversed(records))
    assert report.ok and report.records == 20 and report.chains == 1


def test_a_changed_record_is_found_at_that_record_only() -> None:
    """A changed output shows as CHANGED at the record changed; its successors still verify
    (each is checked against its predecessor's stored tag)."""
    records = linked(10)
    records[4] = dataclasses.replace(records[4], output=0.99)
    assert problems(records) == [(records[4].decision_id, Problem.CHANGED)]


def test_a_changed_record_with_a_new_tag_is_found() -> None:
    """Changing a record and its tag (without the key) shows at it and at its successor."""
    records = linked(5)
    assert records[2].chain is not None
    forged = dataclasses.replace(records[2].chain, tag="ab" * 32)
    records[2] = dataclasses.replace(records[2], output=0.0, chain=forged)
    found = problems(records)
    assert (records[2].decision_id, Problem.CHANGED) in found
    assert (records[3].decision_id, Problem.CHANGED) in found


@pytest.mark.parametrize("removed", [0, 3, 8])
def test_a_removed_record_is_found(removed: int) -> None:
    """A record deleted from the middle or the head leaves a gap, reported at the next one."""
    records = linked(10)
    after = records[removed + 1]
    del records[removed]
    assert problems(records) == [(after.decision_id, Problem.REMOVED)]


def test_a_cut_tail_is_not_found() -> None:
    """By design: the last records removed leave nothing that says they existed."""
    assert verify(KEY, linked(10)[:7]).ok


def test_a_record_without_a_link_is_inserted() -> None:
    """A row written with no chain link is reported as inserted."""
    records = [*linked(3), decision(99)]
    assert problems(records) == [(records[3].decision_id, Problem.INSERTED)]


def test_a_record_at_a_taken_place_is_inserted() -> None:
    """A forged record copying a real one's link is reported; the real one is not."""
    records = linked(4)
    forged = decision(50, chain=records[2].chain)
    assert problems([*records, forged]) == [(forged.decision_id, Problem.INSERTED)]


def test_a_record_of_a_made_up_chain_is_inserted() -> None:
    """A forged record with a chain id of its own (and a tag made without the key) is found,
    whatever sequence it claims."""
    for sequence in (0, 7):
        forged = decision(60, chain=ChainLink("f" * 32, sequence, "00" * 32))
        assert [p for _, p in problems([*linked(3), forged])] in (
            [Problem.INSERTED],
            [Problem.REMOVED, Problem.INSERTED],
        )


def test_a_forged_record_at_the_tail_is_found() -> None:
    """A record appended after the chain's last one, with a made-up tag, does not verify."""
    records = linked(3)
    forged = decision(70, chain=ChainLink(records[0].chain.chain_id, 3, "11" * 32))  # type: ignore[union-attr]
    assert problems([*records, forged]) == [(forged.decision_id, Problem.CHANGED)]


def test_reordered_records_are_found() -> None:
    """Swapping two records' places in the chain makes both fail."""
    records = linked(6)
    a, b = records[1], records[4]
    records[1] = dataclasses.replace(a, chain=b.chain)
    records[4] = dataclasses.replace(b, chain=a.chain)
    found = {d for d, _ in problems(records)}
    assert {a.decision_id, b.decision_id} <= found


def test_another_key_verifies_nothing() -> None:
    """A chain made with another key does not verify with this one."""
    records = linked(3, key=b"k" * 32)
    assert {p for _, p in problems(records)} == {Problem.INSERTED}


def test_a_window_checks_from_its_first_record() -> None:
    """Without the chain's start (a time window), its first record is unanchored, not a
    problem; the records after it are checked."""
    records = linked(10)[4:]
    report = verify(KEY, records, from_start=False)
    assert report.ok and report.unanchored == 1
    records[3] = dataclasses.replace(records[3], output=0.0)
    assert problems(records, from_start=False) == [(records[3].decision_id, Problem.CHANGED)]


def test_only_checked_decisions_are_reported() -> None:
    """`checked` limits what is counted and reported; the others serve as predecessors."""
    records = linked(6)
    records[1] = dataclasses.replace(records[1], output=0.0)
    keep = {d.decision_id for d in records[2:]}
    report = verify(KEY, records, checked=lambda d: d.decision_id in keep)
    assert report.ok and report.records == 4


def test_the_chain_advances_only_when_told() -> None:
    """`link` does not move the chain: a batch that was not kept leaves no gap."""
    c = Chain(KEY)
    first, state = c.link([decision(0), decision(1)])
    c.link([decision(2)])  # linked, never kept
    c.advance(state)
    second, _ = c.link([decision(3)])
    assert [d.chain.sequence for d in [*first, *second]] == [0, 1, 2]  # type: ignore[union-attr]
    assert verify(KEY, [*first, *second]).ok


def test_a_short_key_is_refused() -> None:
    """A chain key shorter than 16 bytes is refused."""
    with pytest.raises(ValueError):
        Chain(b"short")


def test_a_replay_is_the_same_record_and_a_change_is_not() -> None:
    """The same content and link is the same record; another output or link is not."""
    d = linked(1)[0]
    assert same_record(d, dataclasses.replace(d))
    assert not same_record(d, dataclasses.replace(d, output=0.5))
    assert not same_record(d, dataclasses.replace(d, chain=None))


features = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(st.floats(allow_nan=False), st.integers(-(2**40), 2**40), st.text(max_size=8)),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(
    features=features,
    output=st.floats(allow_nan=False, allow_infinity=False),
    subject=st.text(max_size=20),
    changed=st.sampled_from(["output", "features", "subject", "model_version", "key_hex"]),
)
def test_any_change_of_any_content_is_caught(
    features: dict[str, float | int | str], output: float, subject: str, changed: str
) -> None:
    """Over random contents: the canonical content survives the audit row's round trip (so a
    stored chain verifies), and changing any one field of a stored record is caught."""
    records, _ = Chain(KEY).link(
        [decision(i, features=features, output=output, subject=subject) for i in range(3)]
    )
    stored = [_decision_from_row(_decision_cells(d)) for d in records]
    assert [canonical(d) for d in stored] == [canonical(d) for d in records]
    assert verify(KEY, stored).ok
    target = stored[1]
    new_value: object = {
        "output": 0.5 if output != 0.5 else 0.25,
        "features": {**features, "longer-than-any-key": "x"},
        "subject": subject + "x",
        "model_version": target.model_version + 1,
        "key_hex": "ff" + target.key_hex,
    }[changed]
    stored[1] = dataclasses.replace(target, **{changed: new_value})  # type: ignore[arg-type]
    assert problems(stored) == [(target.decision_id, Problem.CHANGED)]


def test_the_key_file_is_created_once_private_and_shared(tmp_path: Path) -> None:
    """A missing key is created (0600, 32 bytes in hex); a second load reads the same key;
    the verifier (create=False) refuses a missing file."""
    path = tmp_path / "auth" / "audit-chain.key"
    with pytest.raises(ChainKeyError):
        load_chain_key(path, create=False)
    key = load_chain_key(path)
    assert len(key) == 32 and load_chain_key(path) == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["audit-chain.key"]


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A key file others may read is refused (as ssh refuses such a private key)."""
    path = tmp_path / "audit-chain.key"
    load_chain_key(path)
    path.chmod(0o644)
    with pytest.raises(ChainKeyError):
        load_chain_key(path)


async def test_the_sink_chains_only_what_the_spool_took(tmp_path: Path) -> None:
    """Decisions spooled get consecutive links; a batch refused by a full spool (Overloaded)
    takes no place in the chain."""
    sink = AuditSink(
        f"127.0.0.1:{free_port()}",
        SpoolConfig(tmp_path / "spool", max_bytes=64 << 10, chain_key_file=tmp_path / "key"),
    )
    await sink.start()
    accepted = 0
    try:
        with pytest.raises(Overloaded):
            for i in range(100_000):
                await sink.record([decision(i)])
                accepted += 1
        assert sink.chain is not None and sink.chain.next_sequence == accepted > 10
    finally:
        await sink.stop(0.0)


@settings(max_examples=300, deadline=None)
@given(
    subject=st.text(max_size=20),
    model=st.text(max_size=12),
    features=st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.one_of(st.text(max_size=10), st.floats(), st.integers(-(2**70), 2**70)),
        max_size=5,
    ),
    output=st.floats(),
    version=st.integers(-(2**70), 2**70),
)
def test_canonical_content_is_the_json_dumps_of_its_fields(
    subject: str, model: str, features: dict[str, object], output: float, version: int
) -> None:
    """canonical() writes exactly the bytes `json.dumps(sort_keys, separators)` wrote before
    it (records chained by earlier versions still verify): over escapes, non-ASCII text, NaN,
    the infinities and integers beyond a float's precision."""
    d = decision(1, subject=subject, model=model, features=features, output=output)
    d = dataclasses.replace(d, model_version=version)
    fields = {k: v if isinstance(v, str) else float(v) for k, v in d.features.items()}
    expected = json.dumps(
        [d.decision_id, d.model, d.model_version, d.subject, fields, d.key_hex,
         repr(float(d.output)), d.source.value, d.decide_time_ms],
        sort_keys=True, separators=(",", ":"),
    ).encode()  # fmt: skip
    assert canonical(d) == expected


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=0, max_size=200), message=st.binary(max_size=300))
def test_the_precomputed_hmac_is_hmac_sha256(key: bytes, message: bytes) -> None:
    """Hmac's tags are the standard library's HMAC-SHA256 for keys shorter than, as long as and
    longer than SHA-256's 64-byte block (hashed first)."""
    assert Hmac(key).digest(message) == hmac.digest(key, message, "sha256")


def test_a_chains_tags_are_hmac_sha256_over_the_previous_tag_and_the_content() -> None:
    """The tags link() hands out are what an outside verifier computes with any HMAC library."""
    chain = Chain(KEY)
    linked, later = chain.link([decision(1), decision(2)])
    previous = bytes(32)
    for d in linked:
        assert d.chain is not None
        expected = hmac.digest(KEY, previous + canonical(d), "sha256")
        assert d.chain.tag == expected.hex()
        previous = expected
    assert (later.next_sequence, later.last_tag, later.chain_id) == (2, previous, chain.chain_id)
    assert (chain.next_sequence, chain.last_tag) == (0, bytes(32))  # link() leaves it as it was
