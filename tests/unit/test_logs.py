"""Logs (telemetry/logs.py): a record becomes one JSON object on one line with timestamp, level,
logger and message; the fields bound in a call's task (request id, decision id, model,
version) and its trace ids appear on its records and on no other call's; a Predict through a
real in-process server logs its decision at DEBUG and nothing at INFO; ROWCAST_LOG_FORMAT picks
JSON or text."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from rowcast.config import LogSettings, Settings
from rowcast.telemetry import logs
from tests.unit.inprocess import MODEL, VERSION, request, start_suite, stop_suite


class Captured:
    """A handler on one logger that formats each record with the formatter under test."""

    def __init__(self, logger: str, level: int, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)
        self.logger = logging.getLogger(logger)
        self.level = self.logger.level

    def __enter__(self) -> Captured:
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def objects(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_record_becomes_one_json_line_with_the_fields() -> None:
    """A record, even with a multi-line message and a traceback, is one line holding one JSON
    object: a UTC ISO 8601 timestamp, the level, the logger, the message, the exception, and
    any `extra=` fields."""
    with Captured("rowcast.test.logs", logging.DEBUG, logs.JsonFormatter()) as captured:
        log = logging.getLogger("rowcast.test.logs")
        try:
            raise ValueError("boom")
        except ValueError:
            log.warning("two\nlines for %s", "x", exc_info=True, extra={"spool": "/tmp/s"})

    (line,) = captured.lines()
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "rowcast.test.logs"
    assert record["message"] == "two\nlines for x"
    assert record["spool"] == "/tmp/s"
    assert "ValueError: boom" in str(record["exception"])
    timestamp = str(record["timestamp"])
    assert timestamp.endswith("Z")
    assert datetime.fromisoformat(timestamp).utcoffset() is not None


async def test_bound_fields_appear_on_their_tasks_records_only() -> None:
    """What a task binds (as each gRPC call's task does) shows on the records it writes, never
    on another task's nor outside."""
    log = logging.getLogger("rowcast.test.logs")

    async def call(request_id: str, decision_id: str) -> None:
        logs.bind(request_id=request_id)
        await asyncio.sleep(0)
        logs.bind(decision_id=decision_id, model=MODEL, model_version=VERSION)
        log.info("handled")

    with Captured("rowcast.test.logs", logging.DEBUG, logs.JsonFormatter()) as captured:
        await asyncio.gather(call("r1", "d1"), call("r2", "d2"))
        log.info("outside")

    first, second, outside = captured.objects()
    assert {(r["request_id"], r["decision_id"]) for r in (first, second)} == {
        ("r1", "d1"),
        ("r2", "d2"),
    }
    assert (first["model"], first["model_version"]) == (MODEL, VERSION)
    assert "request_id" not in outside and "decision_id" not in outside


def test_records_in_a_span_carry_its_trace_and_span_ids() -> None:
    """Inside a recording span, a record has the span's trace id and span id (hex)."""
    provider = TracerProvider()
    with (
        Captured("rowcast.test.logs", logging.DEBUG, logs.JsonFormatter()) as captured,
        provider.get_tracer("test").start_as_current_span("call") as span,
    ):
        logging.getLogger("rowcast.test.logs").info("inside")
    provider.shutdown()

    (record,) = captured.objects()
    context = span.get_span_context()
    assert record["trace_id"] == f"{context.trace_id:032x}"
    assert record["span_id"] == f"{context.span_id:016x}"


async def test_a_predict_logs_its_decision_at_debug_and_nothing_at_info(tmp_path: Path) -> None:
    """A Predict through a real in-process server writes one DEBUG record carrying the decision
    id, model and version it answered; at INFO the prediction path writes nothing."""
    suite = await start_suite(tmp_path, None)
    try:
        with Captured("rowcast.prediction", logging.DEBUG, logs.JsonFormatter()) as debug:
            answer = await suite.stub.Predict(request(), timeout=5)
        with Captured("rowcast.prediction", logging.DEBUG, logs.JsonFormatter()) as info:
            info.logger.setLevel(logging.INFO)
            await suite.stub.Predict(request(), timeout=5)
    finally:
        await stop_suite(suite)

    (record,) = debug.objects()
    assert record["level"] == "DEBUG"
    assert record["decision_id"] == answer.decision_id
    assert (record["model"], record["model_version"]) == (MODEL, answer.model_version)
    assert info.lines() == []


async def test_a_traced_predict_logs_its_request_and_trace_ids(tmp_path: Path) -> None:
    """With tracing on, the DEBUG record of a Predict also carries the request id the caller
    sent (x-request-id) and the trace and span ids of the Predict's span."""
    provider = TracerProvider()
    suite = await start_suite(tmp_path, provider)
    try:
        with Captured("rowcast.prediction", logging.DEBUG, logs.JsonFormatter()) as debug:
            await suite.stub.Predict(request(), timeout=5, metadata=(("x-request-id", "req-9"),))
    finally:
        await stop_suite(suite)
        provider.shutdown()

    (record,) = debug.objects()
    assert record["request_id"] == "req-9"
    assert len(str(record["trace_id"])) == 32 and len(str(record["span_id"])) == 16


def test_text_format_appends_the_bound_fields() -> None:
    """The text format reads `time level logger: message [key=value ...]`."""

    def call() -> None:
        logs.bind(decision_id="d9", model=MODEL)
        logging.getLogger("rowcast.test.logs").warning("slow")

    with Captured("rowcast.test.logs", logging.DEBUG, logs.TextFormatter()) as captured:
        contextvars.copy_context().run(call)  # a context of its own, as a call's task has

    (line,) = captured.lines()
    assert line.endswith(f"WARNING rowcast.test.logs: slow [decision_id=d9 model={MODEL}]")


@pytest.mark.usefixtures("restore_root")
def test_the_log_format_setting_chooses_the_formatter() -> None:
    """`rowcast serve` logs JSON unless ROWCAST_LOG_FORMAT=text; ROWCAST_LOG_LEVEL sets the
    level; anything else is refused at start-up."""
    root = logging.getLogger()
    for env, expected in (
        ({}, logs.JsonFormatter),
        ({"ROWCAST_LOG_FORMAT": "json"}, logs.JsonFormatter),
        ({"ROWCAST_LOG_FORMAT": "text"}, logs.TextFormatter),
    ):
        logs.configure(Settings.from_env(env).logs, default="json", stream=io.StringIO())
        (handler,) = root.handlers
        assert isinstance(handler.formatter, expected)
    logs.configure(LogSettings(level="DEBUG"), default="text", stream=io.StringIO())
    assert root.level == logging.DEBUG
    assert isinstance(root.handlers[0].formatter, logs.TextFormatter)
    with pytest.raises(ValueError, match="ROWCAST_LOG_FORMAT"):
        LogSettings.from_env({"ROWCAST_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="ROWCAST_LOG_LEVEL"):
        LogSettings.from_env({"ROWCAST_LOG_LEVEL": "chatty"})
