"""The materialisation engines a MaterializeVersion call can ask for."""

from __future__ import annotations

from typing import Final, Literal

from rowcast.v1 import model_service_pb2 as model_pb

#: "builtin": the ModelService's worker processes through the Thrift gateway (resumable);
#: "spark": a Spark application that writes HFiles and bulk-loads them.
Engine = Literal["builtin", "spark"]

ENGINES: Final[dict[str, model_pb.MaterializeEngine.ValueType]] = {
    "builtin": model_pb.MATERIALIZE_ENGINE_BUILTIN,
    "spark": model_pb.MATERIALIZE_ENGINE_SPARK,
}
