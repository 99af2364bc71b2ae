"""Exceptions of the gridsync client package.

Every failure a caller can act on is one of these, each with a message a
person can read. They mirror the C client's GS_CLIENT_E* codes
(tools/client/gs_client.h): GridsyncError is the base class.
"""

import builtins

from . import pb


class GridsyncError(Exception):
    """Any failure of the gridsync client."""


class TimeoutError(GridsyncError, builtins.TimeoutError):  # noqa: A001
    """No reply after every attempt (the C client's GS_CLIENT_ETIMEOUT). The
    message says how far the connection got: nothing listening, connected
    but no handshake, or no reply. Also a builtin TimeoutError, so that
    `except TimeoutError` catches it with or without the package's name."""


class AuthError(GridsyncError):
    """The broker refused the CURVE handshake: the key is not enrolled or is
    revoked, or the client and the broker differ in security mode. ZeroMQ
    does not retry such a connection, so nothing would ever arrive."""


class ServerError(GridsyncError):
    """The broker answered with an Error (or an Ack with a request-level
    reason). reason is a gridsync.v1.Reason value, message the broker's."""

    def __init__(self, reason, message):
        self.reason = reason
        self.message = message
        try:
            name = pb.Reason.Name(reason)
        except ValueError:
            name = str(reason)
        super().__init__(f"the broker refused the request: {name}: {message}")

    @property
    def reason_name(self):
        """The reason's name, e.g. "REASON_OUT_OF_SCOPE"."""
        try:
            return pb.Reason.Name(self.reason)
        except ValueError:
            return str(self.reason)


class ProtocolError(GridsyncError):
    """The broker's reply could not be decoded or was not the expected kind."""


class GapError(GridsyncError):
    """A gap in the live feed that the sync service could not fill."""


class LineageChanged(GridsyncError):
    """The broker's store was restored from a backup or replaced: the seqs
    followed so far belong to a store that no longer exists, and the broker
    hands them out again for other events. Whatever was built from the
    events delivered so far is void; re-baseline (Subscriber.rebaseline).

    epoch: the store epoch followed (0 = not known); broker_epoch: the
    broker's as last heard (0 = not sent); head_seq: the broker head that
    revealed it; position: our position it was compared with."""

    def __init__(self, message, epoch=0, broker_epoch=0, head_seq=0, position=0):
        super().__init__(message)
        self.message = message
        self.epoch = epoch
        self.broker_epoch = broker_epoch
        self.head_seq = head_seq
        self.position = position
