"""Client deadlines: `timeout=None` is the client's default, a given timeout is the call's
deadline, and a timeout of 0 or less has expired before the call starts (DEADLINE_EXCEEDED,
nothing sent), through a real in-process server."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from rowcast.v1 import prediction_service_pb2 as pred_pb
from rowcast.v1 import prediction_service_pb2_grpc as pred_grpc
from rowcast_client import (
    AsyncRowcastClient,
    DeadlineExceededError,
    RowcastClient,
    Targets,
)

SLOW_S = 1.0
EXPIRED = [0, 0.0, -1.0, math.nan]
INPUT = {"balance": 1.0}


class Counting(pred_grpc.PredictionServiceServicer):
    """Answers every RPC, counts the calls that reached it; subject `slow` takes SLOW_S."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def Predict(
        self, request: pred_pb.PredictRequest, context: grpc.ServicerContext
    ) -> pred_pb.PredictResponse:
        self._count()
        if request.subject == "slow":
            time.sleep(SLOW_S)
        return pred_pb.PredictResponse(output=0.5, model_version=1)

    def PredictBatch(
        self, request: pred_pb.PredictBatchRequest, context: grpc.ServicerContext
    ) -> pred_pb.PredictBatchResponse:
        self._count()
        return pred_pb.PredictBatchResponse(
            responses=[pred_pb.PredictResponse(output=0.5) for _ in request.inputs]
        )

    def StreamPredict(
        self,
        request_iterator: Iterator[pred_pb.StreamPredictRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[pred_pb.StreamPredictResponse]:
        self._count()
        for _ in request_iterator:
            yield pred_pb.StreamPredictResponse(response=pred_pb.PredictResponse(output=0.5))


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Counting, Targets]]:
    """A blocking server on its own threads, so that both clients can call it from the test."""
    servicer = Counting()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    pred_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, Targets(prediction=f"127.0.0.1:{port}")
    server.stop(0)


@pytest.mark.parametrize("timeout", EXPIRED)
def test_sync_calls_with_an_expired_timeout_fail_and_send_nothing(
    served: tuple[Counting, Targets], timeout: float
) -> None:
    """predict, predict_batch and stream_predict with timeout <= 0 raise DeadlineExceededError
    (code DEADLINE_EXCEEDED) and the server sees no call."""
    servicer, targets = served
    with RowcastClient(targets) as client:
        client.predict("m", INPUT)  # the channel is up: only the deadline can stop the rest
        before = servicer.calls
        with pytest.raises(DeadlineExceededError) as err:
            client.predict("m", INPUT, timeout=timeout)
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(DeadlineExceededError):
            client.predict_batch("m", [INPUT], timeout=timeout)
        with pytest.raises(DeadlineExceededError):
            list(client.stream_predict("m", [INPUT], timeout=timeout))
        assert servicer.calls == before


@pytest.mark.parametrize("timeout", EXPIRED)
async def test_async_calls_with_an_expired_timeout_fail_and_send_nothing(
    served: tuple[Counting, Targets], timeout: float
) -> None:
    """As for the sync client: DeadlineExceededError, and the server sees no call."""
    servicer, targets = served
    async with AsyncRowcastClient(targets) as client:
        await client.predict("m", INPUT)
        before = servicer.calls
        with pytest.raises(DeadlineExceededError) as err:
            await client.predict("m", INPUT, timeout=timeout)
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(DeadlineExceededError):
            await client.predict_batch("m", [INPUT], timeout=timeout)
        with pytest.raises(DeadlineExceededError):
            await first(client.stream_predict("m", [INPUT], timeout=timeout))
        assert servicer.calls == before


async def first(responses: AsyncIterator[pred_pb.PredictResponse]) -> pred_pb.PredictResponse:
    async for response in responses:
        return response
    raise AssertionError("the stream ended without a response")


def test_sync_timeout_none_is_the_clients_default_and_a_given_timeout_overrides_it(
    served: tuple[Counting, Targets],
) -> None:
    """With a 0.2 s default, a 1 s call fails with DEADLINE_EXCEEDED when no timeout is given
    and succeeds with timeout=5."""
    _, targets = served
    with RowcastClient(targets, timeout_s=0.2) as client:
        with pytest.raises(DeadlineExceededError):
            client.predict("m", INPUT, subject="slow")
        assert client.predict("m", INPUT, subject="slow", timeout=5.0).output == 0.5
        assert [r.output for r in client.stream_predict("m", [INPUT, INPUT])] == [0.5, 0.5]


async def test_async_timeout_none_is_the_clients_default_and_a_given_timeout_overrides_it(
    served: tuple[Counting, Targets],
) -> None:
    """As for the sync client."""
    _, targets = served
    async with AsyncRowcastClient(targets, timeout_s=0.2) as client:
        with pytest.raises(DeadlineExceededError):
            await client.predict("m", INPUT, subject="slow")
        assert (await client.predict("m", INPUT, subject="slow", timeout=5.0)).output == 0.5
        assert (await first(client.stream_predict("m", [INPUT]))).output == 0.5


@pytest.mark.parametrize("timeout_s", [0.0, -1.0, math.nan])
async def test_a_client_default_that_is_not_positive_is_refused(timeout_s: float) -> None:
    """A default of 0 would fail every call: both constructors raise ValueError."""
    with pytest.raises(ValueError, match="timeout_s"):
        RowcastClient(Targets(), timeout_s=timeout_s)
    with pytest.raises(ValueError, match="timeout_s"):
        AsyncRowcastClient(Targets(), timeout_s=timeout_s)
