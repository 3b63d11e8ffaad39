"""What rowcast's server interceptors (metrics, tracing) share: each method's handler wrapped
once, and the wrapped one reused for as long as the server hands out the same handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

#: Subscripted only for the type checker (grpc's runtime class is not generic).
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class PerMethodInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that wraps a method's handler once (`wrap`), not on every call."""

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[Handler, Handler]] = {}

    def wrap(self, handler: Handler, method: str) -> Handler:
        """The handler to run for `method` (the given one to leave it as it is)."""
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # UNIMPLEMENTED, answered by gRPC itself
        method: str = handler_call_details.method
        known = self._handlers.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self.wrap(handler, method)
        self._handlers[method] = (handler, wrapped)
        return wrapped
