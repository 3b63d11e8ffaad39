"""Random requests for every RPC of the three services, generated from their descriptors, and
the call that sends one: what tests/unit/test_fuzz_requests.py and
tests/integration/test_fuzz.py share.

The RPCs come from the service descriptors of rowcast.v1, so a new RPC is fuzzed as soon as it
is in a contract. Field values go for the edges: the extremes of every integer type, NaN and
infinities, empty, control-character and 10,000-character strings, enum numbers nobody
defined, nested messages, Timestamps outside 0001..9999, random map keys; strings are drawn
partly from `hints` (valid names) so that requests get past the first check.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from hypothesis import strategies as st

from rowcast.v1 import audit_service_pb2, model_service_pb2, prediction_service_pb2

SERVICE_MODULES: tuple[ModuleType, ...] = (
    prediction_service_pb2,
    audit_service_pb2,
    model_service_pb2,
)

#: Codes no request may ever get: each is a server bug (an unmapped error, a store refusal
#: that validation should have caught, an RPC in the contract that the server lacks).
FORBIDDEN = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)

#: The most a status may take in the trailers (grpc_errors.MAX_STATUS_BYTES is 6 KiB; C-core
#: clients refuse more than 8 KiB).
TRAILER_LIMIT = 8 * 1024

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_ODD_TEXT = ["", " ", "\x00", "a\x00b", "\u202e", "é", "💥", "-1", "NaN", "..", "/", "%s"]
_MAX_DEPTH = 3


@dataclass(frozen=True)
class Rpc:
    """One RPC of a rowcast.v1 service."""

    service: str
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method.name}"

    @property
    def name(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}.{self.method.name}"

    @property
    def request_type(self) -> Descriptor:
        return self.method.input_type

    @property
    def client_streaming(self) -> bool:
        return bool(self.method.client_streaming)

    @property
    def server_streaming(self) -> bool:
        return bool(self.method.server_streaming)


def rpcs(services: Sequence[str] | None = None) -> list[Rpc]:
    """Every RPC of the three services (or of the services named, e.g. `AuditService`)."""
    out: list[Rpc] = []
    for module in SERVICE_MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            if services is None or service.name in services:
                out.extend(Rpc(service.full_name, m) for m in service.methods)
    return out


def _strings(hints: Sequence[str]) -> st.SearchStrategy[str]:
    long_text = st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "é", "💥", "A"]), st.sampled_from([300, 10_000])
    )
    options = [st.text(max_size=40), st.sampled_from(_ODD_TEXT), long_text]
    if hints:
        options.append(st.sampled_from(list(hints)))
    return st.one_of(*options)


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [v for v in (lo, hi, lo // 2, hi // 2, -1, 0, 1, 2, 3, 1000) if lo <= v <= hi]
    return st.one_of(st.integers(lo, hi), st.sampled_from(edges))


def _scalar(field: FieldDescriptor, hints: Sequence[str]) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INT_RANGES:
        return _ints(*_INT_RANGES[kind])
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.one_of(st.floats(), st.sampled_from([0.0, 0.5, 1.0, -1.0, 1e308]))
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return _strings(hints)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        defined = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(defined), _ints(-(2**31), 2**31 - 1))
    raise AssertionError(f"no strategy for {field.full_name} (type {kind})")


def _type_of(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None, field.full_name
    return field.message_type


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.is_repeated
        and bool(_type_of(field).GetOptions().map_entry)
    )


def messages(
    descriptor: Descriptor, hints: Sequence[str] = (), depth: int = 0
) -> st.SearchStrategy[Message]:
    """Messages of this type with a random subset of fields set to edge-seeking values."""

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = message_factory.GetMessageClass(descriptor)()
        for field in descriptor.fields:
            is_message = field.type == FieldDescriptor.TYPE_MESSAGE
            if (is_message and depth >= _MAX_DEPTH) or not draw(st.booleans()):
                continue
            target = getattr(message, field.name)
            if _is_map(field):
                key_field = _type_of(field).fields_by_name["key"]
                value_field = _type_of(field).fields_by_name["value"]
                for _ in range(draw(st.integers(0, 3))):
                    key = draw(_scalar(key_field, hints))
                    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                        target[key].CopyFrom(
                            draw(messages(_type_of(value_field), hints, depth + 1))
                        )
                    else:
                        target[key] = draw(_scalar(value_field, hints))
            elif field.is_repeated:
                for _ in range(draw(st.integers(0, 3))):
                    if is_message:
                        target.add().CopyFrom(draw(messages(_type_of(field), hints, depth + 1)))
                    else:
                        target.append(draw(_scalar(field, hints)))
            elif is_message:
                target.CopyFrom(draw(messages(_type_of(field), hints, depth + 1)))
            else:
                setattr(message, field.name, draw(_scalar(field, hints)))
        return message

    return build()


def requests(rpc: Rpc, hints: Sequence[str] = ()) -> st.SearchStrategy[list[Message]]:
    """What one call sends: one request, or 0 to 3 for a client-streaming RPC."""
    one = messages(rpc.request_type, hints)
    return (
        st.lists(one, min_size=0, max_size=3)
        if rpc.client_streaming
        else st.lists(one, min_size=1, max_size=1)
    )


@dataclass(frozen=True)
class Outcome:
    """How a call ended: its code, message and trailers."""

    code: grpc.StatusCode
    message: str
    trailers: tuple[tuple[str, str | bytes], ...]

    @property
    def trailer_bytes(self) -> int:
        """As HPACK and C-core count them: name + value + 32 for each entry (the value as
        sent: -bin values in base64)."""
        total = 0
        for key, value in self.trailers:
            raw = value if isinstance(value, bytes) else value.encode()
            sent = base64.b64encode(raw) if key.endswith("-bin") else raw
            total += len(key) + len(sent) + 32
        return total + len(self.message.encode())

    def error_info(self) -> error_details_pb2.ErrorInfo | None:
        """The ErrorInfo of a rowcast status (None: the status did not come from rowcast)."""
        for key, value in self.trailers:
            if key == "grpc-status-details-bin" and isinstance(value, bytes):
                status = status_pb2.Status.FromString(value)
                for detail in status.details:
                    info = error_details_pb2.ErrorInfo()
                    if detail.Unpack(info):
                        return info
        return None


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _keep(raw: bytes) -> bytes:
    return raw


def call(channel: grpc.Channel, rpc: Rpc, sent: Sequence[Message], timeout_s: float) -> Outcome:
    """Send the requests and read every response; how the call ended.

    Blocking, on a synchronous channel (async tests run it in a thread): grpc.aio's client
    overwrites the server's status with its own INTERNAL "Internal error from Core" when a
    stream ends while it is still writing (grpc/grpc#36066), the sync client does not.
    """
    kinds: dict[tuple[bool, bool], Callable[..., Any]] = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }
    callable_ = kinds[(rpc.client_streaming, rpc.server_streaming)](
        rpc.path, request_serializer=_serialize, response_deserializer=_keep
    )
    argument: Any = iter(sent) if rpc.client_streaming else sent[0]
    try:
        response = callable_(argument, timeout=timeout_s)
        if rpc.server_streaming:
            for _ in response:
                pass
    except grpc.RpcError as error:
        assert isinstance(error, grpc.Call)
        return Outcome(error.code(), error.details() or "", tuple(error.trailing_metadata() or ()))
    return Outcome(grpc.StatusCode.OK, "", ())
