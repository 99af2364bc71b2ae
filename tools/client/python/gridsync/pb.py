"""The generated protobuf module for proto/gridsync.proto.

gridsync_pb2 is generated at build time by protoc (the build puts it in
build/tools/client/python/gen); it is never committed. Everything in the
package reaches the messages through this module: `from gridsync import pb`,
then pb.Record(), pb.REASON_BUSY and so on.
"""

try:
    from gridsync_pb2 import *  # noqa: F401,F403 (re-exported on purpose)
    import gridsync_pb2 as _pb2
except ImportError as e:  # pragma: no cover - a setup error, said plainly
    raise ImportError(
        "gridsync_pb2 not found: it is generated from proto/gridsync.proto at build "
        "time. Build the tree (cmake --build build) and put build/tools/client/python/gen "
        "on PYTHONPATH, or run: protoc --python_out=DIR -I proto proto/gridsync.proto"
    ) from e

DESCRIPTOR = _pb2.DESCRIPTOR
