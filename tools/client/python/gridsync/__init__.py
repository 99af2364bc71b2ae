"""gridsync: a Python client for gridsyncd (docs/clients.md).

Pure Python on pyzmq and the protobuf runtime (Debian: python3-zmq,
python3-protobuf). The message classes come from gridsync_pb2, which the
build generates from proto/gridsync.proto with protoc; see gridsync.pb.

    Subscriber   follow grid-code prefixes (or, for a department, incident
                 topics) exactly once, with a checkpoint
    Uploader     upload records as one device, with Lazy Pirate retries
    pull         download the records of a grid (snapshot, then deltas)
    Client       request/reply (upload, sync, snapshot, ping) for the above
    load_bundle  read an enrolment bundle (keys, endpoints, device id)

It follows the protocol exactly as the C client library does
(tools/client/gs_client.h); docs/protocol.md is the contract.
"""

from . import pb
from .bundle import Bundle, CurveKeys, load_bundle
from .client import RETRY_LATER, Client, Uploader
from .errors import (AuthError, GapError, GridsyncError, LineageChanged, ProtocolError,
                     ServerError, TimeoutError)
from .pull import Held, Pull, apply_event, pull
from .subscriber import LEVEL_LEN, Subscriber, check_prefixes

__all__ = [
    "pb", "Bundle", "CurveKeys", "load_bundle", "RETRY_LATER", "Client", "Uploader",
    "AuthError", "GapError", "GridsyncError", "LineageChanged", "ProtocolError",
    "ServerError", "TimeoutError", "Held", "Pull", "apply_event", "pull", "LEVEL_LEN",
    "Subscriber", "check_prefixes",
]
