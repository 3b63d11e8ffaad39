"""The Answerer (prediction/answerer.py) on the in-memory stores: answers are the stored rows of
the active version, clamped inputs are flagged, a missing row is NOT_FOUND or the configured
default marked FALLBACK, outages are StoreUnavailable, and the decisions handed to the sink
match the answers one for one. Also: the servicer's protobuf carries every field of an answer."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.convert import SOURCE_TO_PB
from rowcast.core.keys import prediction_key
from rowcast.core.records import Answer, Decision, FallbackRule, PredictionRow, Source
from rowcast.core.signature import CategoricalFeature, NumericFeature, RawValue, Signature
from rowcast.errors import (
    InvalidArgument,
    ModelNotFound,
    NoActiveVersion,
    Overloaded,
    RowNotFound,
    StoreUnavailable,
)
from rowcast.prediction.answerer import Answerer, Input
from rowcast.prediction.lookup import Lookup, VersionCaches
from rowcast.prediction.router import VersionRouter
from rowcast.prediction.servicer import FALLBACK_RULE_TO_PB, answer_to_pb
from rowcast.store.memory import MemoryModels, MemoryPredictions
from rowcast.store.schema import prediction_table
from rowcast.v1 import prediction_service_pb2 as pred_pb

MODEL = "credit"
VERSION = 2
SALT_BUCKETS = 4
#: Balances outside [0, 200] are clamped into an edge bin.
SIGNATURE = Signature(
    (
        NumericFeature(
            "balance", edges=(0.0, 100.0), representatives=(-50.0, 50.0, 150.0), lower=0, upper=200
        ),
        CategoricalFeature("region", ("eu", "us"), oov_bucket=True),
    )
)
STORE_TIMEOUT_S = 2.0


def stored_output(bins: Sequence[int]) -> float:
    """The output materialised for a grid cell (distinct for every cell)."""
    return (bins[0] * 3 + bins[1] + 1) / 10


class RecordingSink:
    """Keeps every batch of decisions it is handed; can be made to refuse them."""

    def __init__(self) -> None:
        self.batches: list[list[Decision]] = []
        self.refuse = False

    async def record(self, decisions: Sequence[Decision]) -> None:
        if self.refuse:
            raise Overloaded("the audit spool is full (test)")
        self.batches.append(list(decisions))


class World:
    """A model whose `current` is VERSION, its table (every grid cell, or none), an Answerer."""

    def __init__(self, *, default: float | None = None, fill: bool = True) -> None:
        self.models = MemoryModels()
        self.models.add(MODEL, SIGNATURE, salt_buckets=SALT_BUCKETS, aliases={"current": VERSION})
        self.predictions = MemoryPredictions()
        self.table = prediction_table(MODEL, VERSION)
        self.predictions.create(self.table)
        if fill:
            for bins in itertools.product(*(range(c) for c in SIGNATURE.cardinalities)):
                self.predictions.put(
                    self.table,
                    prediction_key(bins, SALT_BUCKETS),
                    PredictionRow(stored_output(bins), VERSION),
                )
        self.sink = RecordingSink()
        self.answerer = Answerer(
            VersionRouter(self.models, refresh_s=3600.0),
            Lookup(self.predictions, VersionCaches(1000), STORE_TIMEOUT_S),
            self.sink,
            STORE_TIMEOUT_S,
            default,
        )

    async def answer(self, *inputs: Input, alias: str = "current") -> list[Answer]:
        return await self.answerer.answer(
            MODEL, inputs, timeout_s=1.0, where="inputs[{i}].", alias=alias
        )


def item(balance: RawValue = 50.0, region: str = "eu", subject: str = "") -> Input:
    return Input({"balance": balance, "region": region}, subject)


inputs = st.builds(
    item,
    balance=st.floats(-1e6, 1e6, allow_nan=False),
    region=st.sampled_from(["eu", "us", "asia"]),
    subject=st.text(st.characters(exclude_characters="\x00"), max_size=8),
)


@given(st.lists(inputs, min_size=1, max_size=20))
async def test_answers_are_the_stored_rows_and_the_decisions_match(batch: list[Input]) -> None:
    """Each answer is the active version's stored row for its input's grid cell, from HBase on
    first use; out-of-range balances are flagged clamped; the sink gets one batch with one
    decision per answer carrying the same id, output, version, source and key, plus the
    input's subject and features."""
    world = World()

    answers = await world.answer(*batch)

    assert len(answers) == len(batch)
    (decisions,) = world.sink.batches
    for given_input, answer, decision in zip(batch, answers, decisions, strict=True):
        bins = SIGNATURE.bin(given_input.features)
        balance = given_input.features["balance"]
        assert isinstance(balance, float)
        clamped = not 0 <= balance <= 200
        assert answer.output == stored_output(bins.bins)
        assert answer.model_version == VERSION
        assert answer.source is Source.HBASE
        assert answer.key_hex == prediction_key(bins.bins, SALT_BUCKETS).hex()
        assert answer.clamped_features == (("balance",) if clamped else ())
        assert answer.fallback_rules == ((FallbackRule.CLAMPED_TO_EDGE_BIN,) if clamped else ())
        assert (decision.decision_id, decision.output, decision.model_version) == (
            answer.decision_id,
            answer.output,
            answer.model_version,
        )
        assert (decision.source, decision.key_hex, decision.model) == (
            answer.source,
            answer.key_hex,
            MODEL,
        )
        assert (decision.subject, decision.features) == (given_input.subject, given_input.features)
    assert len({a.decision_id for a in answers}) == len(answers)


async def test_a_repeated_input_is_answered_from_the_cache() -> None:
    """The second answer for the same grid cell comes from the cache (source CACHE) with the
    same output, and does not reach the store."""
    world = World()
    (first,) = await world.answer(item(10.0))
    calls = len(world.predictions.calls)

    (second,) = await world.answer(item(20.0))

    assert (first.source, second.source) == (Source.HBASE, Source.CACHE)
    assert second.output == first.output
    assert len(world.predictions.calls) == calls
    assert [d.source for batch in world.sink.batches for d in batch] == [
        Source.HBASE,
        Source.CACHE,
    ]


async def test_a_missing_row_without_a_default_fails_the_whole_batch() -> None:
    """When the table lacks a row and no default is configured, the call fails with
    RowNotFound (NOT_FOUND) naming the version and key, and no decision is recorded."""
    world = World(fill=False)

    with pytest.raises(RowNotFound, match=f"version {VERSION} of 'credit' has no row for key"):
        await world.answer(item(), item(150.0))

    assert world.sink.batches == []


@given(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, 0.5, 1.0]))
async def test_a_missing_row_is_served_as_the_default_marked_fallback(
    balance: float, default: float
) -> None:
    """With a default configured, a missing row is answered with it, by the active version,
    from source FALLBACK with rule MISSING_ROW_DEFAULT (after CLAMPED_TO_EDGE_BIN when the
    input was clamped too); the decision records the same."""
    world = World(default=default, fill=False)

    (answer,) = await world.answer(item(balance))

    clamped = not 0 <= balance <= 200
    assert (answer.output, answer.model_version, answer.source) == (
        default,
        VERSION,
        Source.FALLBACK,
    )
    clamp_rule = (FallbackRule.CLAMPED_TO_EDGE_BIN,) if clamped else ()
    assert answer.fallback_rules == (*clamp_rule, FallbackRule.MISSING_ROW_DEFAULT)
    ((decision,),) = world.sink.batches
    assert (decision.output, decision.source) == (default, Source.FALLBACK)


async def test_a_store_outage_is_store_unavailable() -> None:
    """When the prediction table cannot be read, or the registry cannot be for a model not yet
    routed, the call fails with StoreUnavailable and records nothing."""
    world = World()
    world.predictions.fail()
    with pytest.raises(StoreUnavailable):
        await world.answer(item())

    registry_down = World()
    registry_down.models.fail()
    with pytest.raises(StoreUnavailable):
        await registry_down.answer(item())

    assert world.sink.batches == registry_down.sink.batches == []


async def test_a_slow_store_fails_within_the_callers_deadline() -> None:
    """A store slower than the caller's deadline is StoreUnavailable, not retryable."""
    world = World()
    world.predictions.delay(0.5)

    with pytest.raises(StoreUnavailable) as raised:
        await world.answerer.answer(MODEL, [item()], timeout_s=0.05)

    assert not raised.value.retryable


async def test_models_without_an_active_version_or_unknown() -> None:
    """A model with no `current` version is NoActiveVersion; an unregistered one
    ModelNotFound; another alias answers from the table of the version it names."""
    world = World()
    world.models.add("fresh", SIGNATURE)
    with pytest.raises(NoActiveVersion, match="has no active version"):
        await world.answerer.answer("fresh", [item()], timeout_s=1.0)
    with pytest.raises(ModelNotFound):
        await world.answerer.answer("nosuch", [item()], timeout_s=1.0)

    world.models.set_alias(MODEL, "shadow", 7)
    shadow = prediction_table(MODEL, 7)
    world.predictions.put(shadow, prediction_key((1, 0), SALT_BUCKETS), PredictionRow(0.25, 7))
    (answer,) = await world.answer(item(50.0, "eu"), alias="shadow")
    assert (answer.output, answer.model_version) == (0.25, 7)


async def test_a_bad_input_names_its_position_and_nothing_is_looked_up() -> None:
    """An input that does not bin is InvalidArgument with its field path prefixed by its
    position; the store and the sink are not touched."""
    world = World()

    with pytest.raises(InvalidArgument) as raised:
        await world.answer(item(), item("lots"))

    assert [v.field for v in raised.value.violations] == ["inputs[1].features.balance"]
    assert world.predictions.calls == []
    assert world.sink.batches == []


async def test_a_sink_that_refuses_means_no_answer() -> None:
    """When the sink refuses the decisions (audit spool full), the call fails with its error:
    no decision id reaches the caller unrecorded."""
    world = World()
    world.sink.refuse = True

    with pytest.raises(Overloaded):
        await world.answer(item())


def test_the_response_carries_every_field_of_the_answer() -> None:
    """Every fallback rule has a protobuf value, and the servicer's PredictResponse holds the
    answer's output, version, decision id, source, key, clamped features and rules."""
    assert set(FALLBACK_RULE_TO_PB) == set(FallbackRule)
    answer = Answer(
        output=0.75,
        model_version=3,
        decision_id="ab" * 16,
        source=Source.FALLBACK,
        key_hex="0100020003",
        clamped_features=("balance",),
        fallback_rules=(FallbackRule.CLAMPED_TO_EDGE_BIN, FallbackRule.MISSING_ROW_DEFAULT),
    )

    response = answer_to_pb(answer)

    assert response == pred_pb.PredictResponse(
        output=0.75,
        model_version=3,
        decision_id="ab" * 16,
        source=SOURCE_TO_PB[Source.FALLBACK],
        key="0100020003",
        clamped_features=["balance"],
        fallback_rules=[
            pred_pb.FALLBACK_RULE_CLAMPED_TO_EDGE_BIN,
            pred_pb.FALLBACK_RULE_MISSING_ROW_DEFAULT,
        ],
    )
