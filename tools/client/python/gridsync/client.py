"""Request/reply with gridsyncd: uploads with Lazy Pirate retries, sync,
snapshot pages and pings, on the broker's request endpoint (a DEALER
socket; docs/protocol.md, "Requests and replies").

Where it sits: the Python counterpart of gs_client_t in
tools/client/gs_client.h, and the same behaviour:

- One frame out (a packed Request), one frame back (a packed Reply with the
  same request_id). Replies to earlier attempts are ignored.
- Lazy Pirate: after `timeout` seconds of silence the socket is closed, a
  new one is connected and the same bytes (same request_id, same
  upload_id) are sent again, up to `retries` times. The broker remembers
  each (device_id, upload_id) with its Ack, so a resend never stores twice.
- The retry-later errors (REASON_STORAGE_FULL, SHUTTING_DOWN, BUSY,
  INTERNAL) are resent after a pause of one timeout; every other Error
  raises ServerError at once.
- Every socket is watched with a ZeroMQ socket monitor: a handshake the
  broker refuses (key not enrolled or revoked, or the two sides in
  different security modes) raises AuthError at once, and a timeout's
  message says how far the connection got.
- Sends never block: a DEALER with no connection would block a plain send
  for ever, so sends wait for POLLOUT only until the attempt's deadline.

Threads: an object belongs to one thread at a time.
"""

import itertools
import os
import struct
import time
import uuid

import zmq

from . import pb
from .bundle import load_bundle
from .errors import AuthError, GridsyncError, ProtocolError, ServerError, TimeoutError

RETRY_LATER = frozenset({pb.REASON_STORAGE_FULL, pb.REASON_SHUTTING_DOWN,
                         pb.REASON_BUSY, pb.REASON_INTERNAL})

_WATCHED = (zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
_monitor_ids = itertools.count(1)   # unique inproc endpoints for monitors


def apply_curve(sock, keys):
    """Turn CURVE on for sock when keys (a bundle's CurveKeys) are given;
    without keys the socket talks plaintext (a broker in --insecure-dev)."""
    if keys is not None:
        sock.curve_serverkey = keys.server_public.encode()
        sock.curve_publickey = keys.public_key.encode()
        sock.curve_secretkey = keys.secret_key.encode()


class Watch:
    """What a socket monitor told about one socket's connections. ZeroMQ
    reports a refused handshake only there; after a refusal (ZAP status,
    mechanism mismatch) it does not reconnect that socket."""

    def __init__(self, ctx, sock):
        self.sock = sock
        self.connected = False      # a TCP connection was made
        self.handshaked = False     # a handshake completed
        self.refused = False        # a handshake failed for good (auth, protocol)
        self.failed = 0             # the last handshake failure event, or 0
        self.value = 0              # its value: ZAP status or protocol error
        addr = f"inproc://gridsync-py-monitor-{os.getpid()}-{next(_monitor_ids)}"
        sock.monitor(addr, _WATCHED)
        # connected before the watched socket connects, so no event is lost
        self.pair = ctx.socket(zmq.PAIR)
        self.pair.setsockopt(zmq.LINGER, 0)
        self.pair.connect(addr)

    def drain(self):
        """Read every event the monitor has queued."""
        while self.pair is not None:
            try:
                frames = self.pair.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames[0]) < 6:
                continue
            event, value = struct.unpack("=HI", frames[0][:6])
            if event == zmq.EVENT_CONNECTED:
                self.connected = True
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.connected = self.handshaked = True
                self.refused = False
                self.failed = 0
            elif event in (zmq.EVENT_HANDSHAKE_FAILED_AUTH,
                           zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
                self.refused = True
                self.failed, self.value = event, value
            elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                # the connection closed during the handshake; ZeroMQ retries
                self.failed, self.value = event, value

    def fold(self, other):
        """Fold what another socket's watch saw into this one (a call's view
        over the sockets of all its attempts)."""
        self.connected |= other.connected
        self.handshaked |= other.handshaked
        if other.failed:
            self.failed, self.value = other.failed, other.value

    def stop(self):
        if self.pair is None:
            return
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.pair.close(0)
        self.pair = None

    def refusal(self, curve, endpoint):
        """The message for a refused handshake (refused is set)."""
        if self.failed == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return (f"handshake refused: is the key enrolled / is the broker in CURVE mode? "
                    f"({endpoint} answered {self.value}: it does not know this key, or the "
                    f"key is revoked; see gridctl devices list)")
        if self.value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH and curve:
            return (f"handshake refused: this client uses CURVE keys but the broker at "
                    f"{endpoint} is not in CURVE mode (started with --insecure-dev?)")
        if self.value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return (f"handshake refused: the broker at {endpoint} is in CURVE mode and this "
                    f"client has no keys: give it the enrolment bundle of an enrolled key "
                    f"(gridctl devices enrol --bundle)")
        return (f"handshake refused: is the key enrolled / is the broker in CURVE mode? "
                f"({endpoint}: ZeroMQ protocol error 0x{self.value:x}; is the bundle's "
                f"server key this broker's?)")

    def timeout(self, curve, endpoint, attempts, timeout):
        """The message for a timeout, from how far the connections got."""
        if self.handshaked:
            return (f"no reply from {endpoint} ({attempts} attempt"
                    f"{'s' if attempts > 1 else ''} of {int(timeout * 1000)} ms)")
        if not self.connected:
            return (f"no reply from {endpoint}: could not connect (is gridsyncd running and "
                    f"listening there?); no handshake completed, so "
                    + ("the CURVE keys were not tried yet" if curve else
                       "it is not known whether the broker wants CURVE keys"))
        if self.failed == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            return (f"no reply from {endpoint}: connected, but the broker dropped every "
                    f"handshake: is the key enrolled / is the broker in CURVE mode, and is "
                    f"the bundle's server key this broker's?")
        return (f"no reply from {endpoint}: connected, but no handshake completed: is the "
                f"key enrolled / is the broker in CURVE mode?")


class Stats:
    """Counters of a Client."""

    def __init__(self):
        self.requests = 0           # requests sent (first attempts)
        self.resends = 0            # Lazy Pirate resends
        self.stale_replies = 0      # replies to earlier attempts, ignored


class Client:
    """Request/reply on the broker's request endpoint, with Lazy Pirate
    retries (see the module comment).

    endpoint: e.g. "tcp://127.0.0.1:7510"; keys: CurveKeys (None =
    plaintext, for a broker in --insecure-dev mode); timeout: seconds to
    wait for one reply; retries: resends after a timeout; on_retry: called
    with (attempt, reason) before each resend, reason "timeout" or the
    retry-later Error's message (for logs and tests)."""

    def __init__(self, endpoint, keys=None, timeout=3.0, retries=5,
                 max_reply_bytes=64 << 20, on_retry=None):
        if not endpoint:
            raise GridsyncError("no request endpoint: give one, or a bundle that names "
                                "its upload_endpoint")
        self.endpoint = endpoint
        self.keys = keys
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.max_reply_bytes = int(max_reply_bytes)
        self.on_retry = on_retry
        self.stats = Stats()
        # random start so two runs never share request ids
        self._next_id = ((os.getpid() << 32) ^ int(time.monotonic() * 1000)) & (2**63 - 1)
        self._ctx = zmq.Context()
        self._sock = None
        self._watch = None
        self._connect()

    @classmethod
    def from_bundle(cls, path, endpoint=None, **kw):
        """A Client with the keys and the upload endpoint of an enrolment
        bundle; endpoint, when given, wins over the bundle's."""
        b = load_bundle(path)
        return cls(endpoint or b.upload_endpoint, keys=b.keys, **kw)

    def _connect(self):
        self._disconnect()
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)      # closing never waits for unsent requests
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_reply_bytes)
        apply_curve(sock, self.keys)
        self._watch = Watch(self._ctx, sock)
        sock.connect(self.endpoint)
        self._sock = sock

    def _disconnect(self):
        if self._sock is not None:
            self._watch.stop()
            self._sock.close(0)
            self._sock = None

    def close(self):
        """Close the sockets and the context. Safe to call twice."""
        self._disconnect()
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send_until(self, data, deadline):
        """Queue data without blocking past deadline. True sent, False the
        deadline passed; AuthError when the handshake was refused."""
        while True:
            try:
                self._sock.send(data, zmq.NOBLOCK)
                return True
            except zmq.Again:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            poller = zmq.Poller()
            poller.register(self._sock, zmq.POLLOUT)
            poller.register(self._watch.pair, zmq.POLLIN)
            poller.poll(max(1, int(left * 1000)))
            self._watch.drain()
            if self._watch.refused:
                raise AuthError(self._watch.refusal(self.keys is not None, self.endpoint))

    def call(self, request, retry=True):
        """Send one Request (its request_id is set here) and return the Reply.
        retry: resend on silence (Lazy Pirate) and after retry-later errors.
        Raises ServerError for an Error reply, AuthError for a refused
        handshake, TimeoutError when every attempt went unanswered."""
        # a socket whose handshake was refused is dead: give the broker a new
        # chance (it may have enrolled the key since)
        self._watch.drain()
        if self._watch.refused:
            self._connect()
        self._next_id += 1
        request.request_id = self._next_id
        data = request.SerializeToString()
        self.stats.requests += 1
        attempts = 1 + self.retries if retry else 1
        seen = _Seen()
        curve = self.keys is not None
        try:
            for attempt in range(attempts):
                if attempt > 0:
                    self.stats.resends += 1
                deadline = time.monotonic() + self.timeout
                if self._send_until(data, deadline):
                    reply = self._wait(request.request_id, deadline)
                    if reply is not None:
                        if reply.WhichOneof("body") != "error":
                            return reply
                        err = reply.error
                        if not (retry and err.reason in RETRY_LATER
                                and attempt + 1 < attempts):
                            raise ServerError(err.reason, err.message)
                        # back off for one timeout before sending the same bytes
                        if self.on_retry:
                            self.on_retry(attempt + 1, err.message)
                        time.sleep(self.timeout)
                        continue
                # Lazy Pirate: the socket may be wedged on a dead peer; start fresh
                self._watch.drain()
                seen.fold(self._watch)
                self._connect()
                if attempt + 1 < attempts and self.on_retry:
                    self.on_retry(attempt + 1, "timeout")
        except AuthError:
            self._watch.drain()
            raise
        raise TimeoutError(seen.timeout(curve, self.endpoint, attempts, self.timeout))

    def _wait(self, request_id, deadline):
        """The reply to request_id, or None at the deadline."""
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._watch.pair, zmq.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready = dict(poller.poll(max(1, int(left * 1000))))
            if self._watch.pair in ready:
                self._watch.drain()
                if self._watch.refused:
                    raise AuthError(self._watch.refusal(self.keys is not None,
                                                        self.endpoint))
            if self._sock not in ready:
                continue
            data = self._sock.recv()
            try:
                reply = pb.Reply.FromString(data)
            except Exception:   # a DecodeError: not a reply of ours
                self.stats.stale_replies += 1
                continue
            # request_id 0: the broker could not even read our request_id
            if reply.request_id == request_id or (
                    reply.request_id == 0 and reply.WhichOneof("body") == "error"):
                return reply
            self.stats.stale_replies += 1   # an answer to an earlier attempt

    def _expect(self, reply, body):
        if reply.WhichOneof("body") != body:
            raise ProtocolError(f"expected a {body} reply from {self.endpoint}, "
                                f"got {reply.WhichOneof('body')}")
        return getattr(reply, body)

    def upload(self, device_id, records, upload_id=None):
        """Upload records (pb.Record objects) as device_id, with Lazy Pirate
        retries under one upload_id (a new uuid4 when None). Returns the Ack.
        Raises ServerError for an Error, or an Ack with a request-level
        reason; per-record outcomes are in ack.results."""
        req = pb.Request()
        req.upload.device_id = device_id
        req.upload.upload_id = upload_id or str(uuid.uuid4())
        req.upload.records.extend(records)
        ack = self._expect(self.call(req), "ack")
        if ack.reason != pb.REASON_NONE:
            raise ServerError(ack.reason, ack.message)
        return ack

    def sync(self, prefixes, since_seq=0, limit=0, omit_restricted=False):
        """One sync reply: events under prefixes after since_seq."""
        req = pb.Request()
        req.sync.prefixes.extend(prefixes)
        req.sync.since_seq = since_seq
        req.sync.limit = limit
        req.sync.omit_restricted = omit_restricted
        return self._expect(self.call(req), "sync")

    def snapshot(self, prefixes, cursor=b"", limit=0, omit_restricted=False):
        """One snapshot page; cursor b"" for the first."""
        req = pb.Request()
        req.snapshot.prefixes.extend(prefixes)
        req.snapshot.cursor = cursor
        req.snapshot.limit = limit
        req.snapshot.omit_restricted = omit_restricted
        return self._expect(self.call(req), "snapshot")

    def ping(self):
        """Ask the broker who it takes this client's key for: one attempt, no
        resend. Returns (PingReply, round trip in seconds)."""
        req = pb.Request()
        req.ping.SetInParent()
        t0 = time.monotonic()
        reply = self.call(req, retry=False)
        return self._expect(reply, "ping"), time.monotonic() - t0

    def incident_categories(self):
        """The broker's incident category table (IncidentCategoriesReply):
        the codes and names incidents may be reported with, their deadlines,
        which are retired, and whether the store has its own table
        (configured) or the built-in one. Any enrolled key may ask."""
        req = pb.Request()
        req.incident_categories.SetInParent()
        return self._expect(self.call(req), "incident_categories")


class _Seen(Watch):
    """What every socket of one call saw (no monitor of its own)."""

    def __init__(self):  # pylint: disable=super-init-not-called
        self.connected = self.handshaked = self.refused = False
        self.failed = self.value = 0
        self.pair = None


class Uploader:
    """Uploads as one device, with Lazy Pirate retries (Client.call).

    The caller keeps an upload's records and its upload_id together until
    the Ack arrives, across restarts too, and resends them unchanged: the
    broker answers a repeat with the Ack it gave the first time and stores
    nothing again. Never reuse an upload_id for other content.

    endpoint, keys, timeout, retries, on_retry: as for Client."""

    def __init__(self, endpoint, device_id, keys=None, timeout=3.0, retries=5, on_retry=None):
        if not device_id:
            raise GridsyncError("no device id: give one, or a bundle that names its device_id")
        self.device_id = device_id
        self.client = Client(endpoint, keys=keys, timeout=timeout, retries=retries,
                             on_retry=on_retry)

    @classmethod
    def from_bundle(cls, path, endpoint=None, device_id=None, **kw):
        """An Uploader with the keys, upload endpoint and device id of an
        enrolment bundle; endpoint and device_id, when given, win."""
        b = load_bundle(path)
        return cls(endpoint or b.upload_endpoint, device_id or b.device_id, keys=b.keys, **kw)

    @staticmethod
    def new_upload_id():
        """A fresh upload id: store it with the records before the first send."""
        return str(uuid.uuid4())

    def upload(self, records, upload_id=None):
        """Send records under upload_id (a fresh one when None) until an Ack
        arrives or the retries are spent. Returns the Ack; see Client.upload
        for the errors."""
        return self.client.upload(self.device_id, records, upload_id or self.new_upload_id())

    @property
    def stats(self):
        return self.client.stats

    def close(self):
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
