"""The PredictionService contract as a protoset file (a serialized FileDescriptorSet), built
from the descriptors the servers themselves run, so ghz needs no server reflection.

The harness measures with a protoset on purpose: reflection is one more round trip per ghz
run, and a reflection quirk must not stop the measurements. The checked-in configs under
bench/ghz use reflection, as load testers would.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

from rowcast.v1 import prediction_service_pb2


def _in_dependency_order(root: FileDescriptor) -> list[FileDescriptor]:
    ordered: list[FileDescriptor] = []
    seen: set[str] = set()

    def visit(file: FileDescriptor) -> None:
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            visit(dependency)
        ordered.append(file)

    visit(root)
    return ordered


def write_protoset(path: Path) -> Path:
    """Write prediction_service.proto and everything it imports to `path`."""
    files = descriptor_pb2.FileDescriptorSet()
    for file in _in_dependency_order(prediction_service_pb2.DESCRIPTOR):
        file.CopyToProto(files.file.add())
    path.write_bytes(files.SerializeToString())
    return path
