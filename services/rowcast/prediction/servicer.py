"""PredictionService: bin the inputs, look the answers up (cache, then HBase), record the
decisions, answer. Predict, PredictBatch and StreamPredict share one path (`Answerer`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from rowcast.convert import SOURCE_TO_PB, features_from_pb
from rowcast.core.keys import new_decision_id, prediction_key
from rowcast.core.records import (
    Decision,
    Source,
    check_alias,
    check_model_name,
    check_subject,
)
from rowcast.core.signature import RawValue
from rowcast.deadlines import remaining_s
from rowcast.errors import InvalidArgument, RowcastError, RowNotFound
from rowcast.grpc_errors import abort, handles_errors
from rowcast.prediction.lookup import Lookup
from rowcast.prediction.router import VersionRouter
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast.v1 import resources_pb2 as pb

Context = grpc.aio.ServicerContext[object, object]

#: Largest PredictBatch (documented in the contract).
MAX_BATCH = 1_000
#: Requests of one stream answered concurrently (responses still go out in order).
STREAM_WINDOW = 64


class DecisionSink(Protocol):
    """Where decisions go once answered (the audit path)."""

    async def record(self, decisions: Sequence[Decision]) -> None: ...


class NoAudit:
    """A sink that records nothing: only for measuring what auditing costs."""

    async def record(self, decisions: Sequence[Decision]) -> None:
        return None


@dataclass(frozen=True)
class Input:
    """One parsed input: raw feature values and subject."""

    features: dict[str, RawValue]
    subject: str


def parse_input(features: Mapping[str, pb.FeatureValue], subject: str, where: str) -> Input:
    try:
        return Input(features_from_pb(features), check_subject(subject))
    except InvalidArgument as exc:
        raise exc.prefixed(where) from None


class Answerer:
    """Answers a list of inputs for one model from one version snapshot, all-or-nothing."""

    def __init__(
        self,
        router: VersionRouter,
        lookup: Lookup,
        audit: DecisionSink,
        store_timeout_s: float,
        missing_row_default: float | None,
    ) -> None:
        self._router = router
        self._lookup = lookup
        self._audit = audit
        self._store_timeout_s = store_timeout_s
        self._missing_row_default = missing_row_default

    async def answer(
        self,
        model: str,
        inputs: Sequence[Input],
        timeout_s: float | None,
        where: str = "",
        alias: str = "current",
    ) -> list[pred_pb.PredictResponse]:
        budget = (
            self._store_timeout_s if timeout_s is None else min(timeout_s, self._store_timeout_s)
        )
        active = await self._router.resolve(model, budget, alias)
        binned = []
        for i, item in enumerate(inputs):
            try:
                binned.append(active.signature.bin(item.features))
            except InvalidArgument as exc:
                raise exc.prefixed(where.format(i=i)) from None
        keys = [prediction_key(b.bins, active.salt_buckets) for b in binned]
        found = await self._lookup.get(active.table, keys, budget)
        now_ms = int(time.time() * 1000)
        decisions: list[Decision] = []
        responses: list[pred_pb.PredictResponse] = []
        for item, bins, key, hit in zip(inputs, binned, keys, found, strict=True):
            rules: list[pred_pb.FallbackRule] = []
            if bins.clamped:
                rules.append(pred_pb.FALLBACK_RULE_CLAMPED_TO_EDGE_BIN)
            if hit.row is not None:
                output, version = hit.row.output, hit.row.version
                source = Source.CACHE if hit.cached else Source.HBASE
            elif self._missing_row_default is not None:
                output, version, source = self._missing_row_default, active.version, Source.FALLBACK
                rules.append(pred_pb.FALLBACK_RULE_MISSING_ROW_DEFAULT)
            else:
                raise RowNotFound(
                    f"version {active.version} of {model!r} has no row for key {key.hex()} "
                    "(its table is incomplete)"
                )
            decision = Decision(
                decision_id=new_decision_id(now_ms),
                model=model,
                model_version=version,
                subject=item.subject,
                features=item.features,
                key_hex=key.hex(),
                output=output,
                source=source,
                decide_time_ms=now_ms,
            )
            decisions.append(decision)
            responses.append(
                pred_pb.PredictResponse(
                    output=output,
                    model_version=version,
                    decision_id=decision.decision_id,
                    source=SOURCE_TO_PB[source],
                    key=decision.key_hex,
                    clamped_features=bins.clamped,
                    fallback_rules=rules,
                )
            )
        # A decision id reaches the caller only once the sink has accepted its record.
        await self._audit.record(decisions)
        return responses


class PredictionServicer(pred_grpc.PredictionServiceServicer):
    """Maps the three Predict RPCs onto the Answerer."""

    def __init__(self, answerer: Answerer, store_timeout_s: float) -> None:
        self._answerer = answerer
        self._store_timeout_s = store_timeout_s

    async def _one(
        self, request: pred_pb.PredictRequest, context: Context, where: str
    ) -> pred_pb.PredictResponse:
        model = check_model_name(request.model)
        item = parse_input(request.features, request.subject, where)
        alias = (
            check_alias(request.alias, f"{where}alias", user=False) if request.alias else "current"
        )
        timeout_s = remaining_s(context, self._store_timeout_s)
        (response,) = await self._answerer.answer(model, [item], timeout_s, where, alias)
        return response

    @handles_errors
    async def Predict(
        self, request: pred_pb.PredictRequest, context: Context
    ) -> pred_pb.PredictResponse:
        return await self._one(request, context, "")

    @handles_errors
    async def PredictBatch(
        self, request: pred_pb.PredictBatchRequest, context: Context
    ) -> pred_pb.PredictBatchResponse:
        model = check_model_name(request.model)
        if not request.inputs:
            raise InvalidArgument.field("inputs", "a batch needs at least 1 input")
        if len(request.inputs) > MAX_BATCH:
            raise InvalidArgument.field(
                "inputs", f"at most {MAX_BATCH} inputs per batch, got {len(request.inputs)}"
            )
        inputs = [
            parse_input(item.features, item.subject, f"inputs[{i}].")
            for i, item in enumerate(request.inputs)
        ]
        responses = await self._answerer.answer(
            model, inputs, remaining_s(context, self._store_timeout_s), "inputs[{i}]."
        )
        return pred_pb.PredictBatchResponse(responses=responses)

    async def StreamPredict(
        self, request_iterator: AsyncIterator[pred_pb.StreamPredictRequest], context: Context
    ) -> AsyncIterator[pred_pb.StreamPredictResponse]:
        # A reader task keeps pulling requests while answers are awaited in order, so a caller
        # that waits for each answer before sending the next request is served too.
        order: asyncio.Queue[asyncio.Task[pred_pb.PredictResponse] | None] = asyncio.Queue(
            maxsize=STREAM_WINDOW
        )

        async def read() -> None:
            position = 0
            async for message in request_iterator:
                task = asyncio.create_task(
                    self._one(message.request, context, f"stream[{position}].")
                )
                await order.put(task)
                position += 1
            await order.put(None)

        reader = asyncio.create_task(read())
        try:
            while (task := await order.get()) is not None:
                yield pred_pb.StreamPredictResponse(response=await task)
            await reader
        except RowcastError as error:
            await abort(context, error)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            while not order.empty():
                leftover = order.get_nowait()
                if leftover is not None:
                    leftover.cancel()
