"""PredictionService: parses the three Predict RPCs, answers them through the one path they
share (prediction/answerer.py), and builds their protobuf responses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

import grpc

from rowcast.convert import SOURCE_TO_PB, features_from_pb
from rowcast.core.records import Answer, FallbackRule, check_alias, check_model_name, check_subject
from rowcast.deadlines import remaining_s
from rowcast.errors import InvalidArgument, RowcastError
from rowcast.grpc_errors import abort, handles_errors
from rowcast.prediction.answerer import Answerer, Input
from rowcast.telemetry.tracing import message_span
from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast.v1 import resources_pb2 as pb

Context = grpc.aio.ServicerContext[object, object]

#: Largest PredictBatch (documented in the contract).
MAX_BATCH = 1_000
#: Requests of one stream answered concurrently (responses still go out in order).
STREAM_WINDOW = 64
#: The span of one StreamPredict request (a child of the stream's span) when traced.
STREAM_MESSAGE_SPAN = "rowcast.v1.PredictionService/StreamPredict message"


#: How each fallback rule is told to the caller.
FALLBACK_RULE_TO_PB: dict[FallbackRule, pred_pb.FallbackRule.ValueType] = {
    FallbackRule.CLAMPED_TO_EDGE_BIN: pred_pb.FALLBACK_RULE_CLAMPED_TO_EDGE_BIN,
    FallbackRule.MISSING_ROW_DEFAULT: pred_pb.FALLBACK_RULE_MISSING_ROW_DEFAULT,
}


def parse_input(features: Mapping[str, pb.FeatureValue], subject: str, where: str) -> Input:
    try:
        return Input(features_from_pb(features), check_subject(subject))
    except InvalidArgument as exc:
        raise exc.prefixed(where) from None


def answer_to_pb(answer: Answer) -> pred_pb.PredictResponse:
    response = pred_pb.PredictResponse(
        output=answer.output,
        model_version=answer.model_version,
        decision_id=answer.decision_id,
        source=SOURCE_TO_PB[answer.source],
        key=answer.key_hex,
    )
    # Repeated fields only when there is something in them (most answers): an empty one
    # passed to the constructor still costs a conversion.
    if answer.clamped_features:
        response.clamped_features.extend(answer.clamped_features)
    if answer.fallback_rules:
        response.fallback_rules.extend(FALLBACK_RULE_TO_PB[rule] for rule in answer.fallback_rules)
    return response


class PredictionServicer(pred_grpc.PredictionServiceServicer):
    """Maps the three Predict RPCs onto the Answerer."""

    def __init__(self, answerer: Answerer, store_timeout_s: float) -> None:
        self._answerer = answerer
        self._store_timeout_s = store_timeout_s

    async def _one(
        self, request: pred_pb.PredictRequest, context: Context
    ) -> pred_pb.PredictResponse:
        model = check_model_name(request.model)
        item = parse_input(request.features, request.subject, "")
        alias = check_alias(request.alias, user=False) if request.alias else "current"
        (answer,) = await self._answerer.answer(
            model,
            [item],
            timeout_s=remaining_s(context, self._store_timeout_s),
            alias=alias,
        )
        return answer_to_pb(answer)

    async def _stream_one(
        self, request: pred_pb.PredictRequest, context: Context, position: int
    ) -> pred_pb.PredictResponse:
        """One request of a stream; any error that ends the stream names its position: field
        paths as `stream[4].model`, other errors' messages as `stream[4]: ...`."""
        with message_span(STREAM_MESSAGE_SPAN):
            try:
                return await self._one(request, context)
            except InvalidArgument as exc:
                raise exc.prefixed(f"stream[{position}].") from None
            except RowcastError as exc:
                raise exc.located(f"stream[{position}]") from None

    @handles_errors
    async def Predict(
        self, request: pred_pb.PredictRequest, context: Context
    ) -> pred_pb.PredictResponse:
        return await self._one(request, context)

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
        answers = await self._answerer.answer(
            model,
            inputs,
            timeout_s=remaining_s(context, self._store_timeout_s),
            where="inputs[{i}].",
        )
        return pred_pb.PredictBatchResponse(responses=[answer_to_pb(a) for a in answers])

    async def StreamPredict(
        self, request_iterator: AsyncIterator[pred_pb.StreamPredictRequest], context: Context
    ) -> AsyncIterator[pred_pb.StreamPredictResponse]:
        # A reader task keeps pulling requests while answers are awaited in order, so a caller
        # that waits for each answer before sending the next request is served too.
        order: asyncio.Queue[asyncio.Future[pred_pb.PredictResponse] | None] = asyncio.Queue(
            maxsize=STREAM_WINDOW
        )

        async def read() -> None:
            position = 0
            try:
                async for message in request_iterator:
                    task = asyncio.create_task(self._stream_one(message.request, context, position))
                    await order.put(task)
                    position += 1
            except RowcastError as error:
                # Reading the stream failed (e.g. the caller's token was revoked while it was
                # open): answer what came before, then end the stream with this error.
                failed: asyncio.Future[pred_pb.PredictResponse] = (
                    asyncio.get_running_loop().create_future()
                )
                failed.set_exception(error)
                await order.put(failed)
                return
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
