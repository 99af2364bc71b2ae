"""The district subscriber: every event under a list of grid-code prefixes
exactly once, in seq order per prefix, across restarts.

Where it sits: downstream of gridsyncd, in a district system. The Python
counterpart of gs_sub_t in tools/client/gs_client.h, with the same rules
(docs/protocol.md, "District subscriber: resume and repair"):

- Clone pattern: subscribe to the live feed first, then catch up from the
  checkpoint through the sync service, so nothing committed in between
  falls through; live events at or below what was pulled are dropped.
- Gaps: an event whose prev_seq at the prefix's level is past our position
  means events were lost; a heartbeat of our own prefix whose
  prefix_last_seq is past our position means the tail was lost. Either is
  repaired from the sync service before anything later is delivered.
- Lineage: a sync reply with another non-zero store_epoch, or a head_seq
  below a position of ours, means the broker's store was restored or
  replaced. From then on next() raises LineageChanged until rebaseline().
  A heartbeat that says so is only a suspicion, checked with a sync request.
- Checkpoint: a file with the positions per prefix and the store epoch, in
  the C client's format (gridfeed reads the same file), written atomically:
  a temporary file written and fsynced, renamed over the checkpoint, and
  the directory fsynced. run() writes it only after the application's
  handler has returned for the events it covers.
- Department mode (categories): instead of the prefixes themselves, follow
  the incident topic of each category in each prefix ("I02/440305",
  docs/protocol.md "Following incident topics"), as gs_sub does with
  opts.categories: each topic is a position of its own (topic i is prefix
  i % n, category i // n), its chain is the feed message's
  incident_prev_seq, the sync replies' other events are skipped, and a
  catch-up or repair that reads the log to its head moves the position to
  next_seq. The checkpoint names the topics, as gridfeed --category does.

Threads: an object belongs to one thread at a time.
"""

import collections
import os
import time

import zmq

from . import pb
from .bundle import load_bundle
from .client import Client, Watch, apply_curve
from .errors import AuthError, GapError, GridsyncError, LineageChanged

LEVEL_LEN = (0, 2, 4, 6, 9, 12, 15)    # prefix length of each hierarchy level
_SLICE_S = 0.1                          # longest single poll of run(), seconds
_CHECKPOINT_MAGIC = "gridsync-checkpoint 1"
_MAX_TOPICS = 64                        # prefixes, or categories x prefixes
_CATEGORY_MAX = 8                       # bytes of an incident category code


class SubscriberStats:
    """Counters of a Subscriber."""

    def __init__(self):
        self.live = 0               # events delivered from the live feed
        self.pulled = 0             # events delivered from the sync service
        self.duplicates = 0         # live events already delivered, dropped
        self.gaps = 0               # gaps detected (each repaired)
        self.heartbeats = 0         # heartbeats seen


def check_prefixes(prefixes):
    """Raise ValueError unless prefixes is a non-empty list of at most 64
    digit prefixes at level boundaries, none inside another."""
    if not prefixes or len(prefixes) > 64:
        raise ValueError("follow 1 to 64 prefixes")
    for p in prefixes:
        if len(p) not in LEVEL_LEN or (p and not p.isascii()) or (p and not p.isdigit()):
            raise ValueError(f"bad prefix {p!r}: a grid-code prefix of 0, 2, 4, 6, 9, 12 "
                             f"or 15 digits")
    for i, p in enumerate(prefixes):
        for j, q in enumerate(prefixes):
            if i != j and p.startswith(q):
                raise ValueError(f"prefix {p!r} lies inside {q!r}: follow only the shorter")


def check_categories(categories, n_prefixes):
    """Raise ValueError unless categories is a list of incident category
    codes (1 to 8 ASCII letters or digits, each once) whose topics, one per
    category and prefix, number at most 64."""
    for i, c in enumerate(categories):
        if (not isinstance(c, str) or not 1 <= len(c) <= _CATEGORY_MAX or not c.isascii()
                or not c.isalnum()):
            raise ValueError(f"bad category {c!r}: a code of 1 to {_CATEGORY_MAX} letters "
                             f"or digits, e.g. '02'")
        if c in categories[:i]:
            raise ValueError(f"category {c!r} is given twice")
    if len(categories) * n_prefixes > _MAX_TOPICS:
        raise ValueError(f"{len(categories)} categories x {n_prefixes} prefixes make more "
                         f"than {_MAX_TOPICS} topics")


class Subscriber:
    """Follow prefixes exactly once (see the module comment).

    feed_endpoint, sync_endpoint: the broker's live feed and request
    endpoints. prefixes: grid-code prefixes (0, 2, 4, 6, 9, 12 or 15
    digits; none inside another). checkpoint: a file path (None = no
    checkpoint); when it exists, following resumes there, else from since
    (0 = from the beginning). keys: CurveKeys (None = plaintext). epoch: the
    store epoch since belongs to (0 = take the broker's). timeout, retries:
    for sync requests (Client). rcvhwm: the live feed's receive HWM.
    on_restore: what run() does on a lineage change, "stop" (raise
    LineageChanged) or "rebaseline" (call on_rebaseline(exc), then
    rebaseline() and go on from seq 0). categories: incident category
    codes (None or empty = follow the prefixes themselves); when given,
    follow the incident topic of each category in each prefix instead, and
    deliver only the incidents of those categories: how a DEPARTMENT key
    follows. Positions, position(i) and the checkpoint are then per topic
    (self.topics; topic i is prefixes[i % n], categories[i // n]).

    The constructor subscribes and catches up. A lineage change found
    during the catch-up does not fail it: the first next() raises it.
    Raises ValueError for bad prefixes, GridsyncError for an unreadable or
    damaged checkpoint, and the Client's errors (AuthError, TimeoutError,
    ServerError) when the catch-up fails."""

    def __init__(self, feed_endpoint, sync_endpoint, prefixes, checkpoint=None, since=0,
                 keys=None, epoch=0, timeout=3.0, retries=5, rcvhwm=100000, sync_limit=0,
                 omit_restricted=False, on_restore="stop", on_rebaseline=None,
                 categories=None):
        prefixes = [prefixes] if isinstance(prefixes, str) else list(prefixes)
        check_prefixes(prefixes)
        categories = ([categories] if isinstance(categories, str)
                      else list(categories or ()))
        check_categories(categories, len(prefixes))
        if on_restore not in ("stop", "rebaseline"):
            raise ValueError("on_restore is 'stop' or 'rebaseline'")
        if not feed_endpoint:
            raise GridsyncError("no feed endpoint: give one, or a bundle that names its "
                                "feed_endpoint")
        self.prefixes = prefixes
        self.categories = categories
        self.incidents = bool(categories)           # following incident topics
        n = len(prefixes)
        if self.incidents:
            # topic i: prefix i % n, category i // n, as gs_sub numbers them
            self.topic_prefix = [prefixes[i % n] for i in range(n * len(categories))]
            self.topic_category = [categories[i // n] for i in range(n * len(categories))]
            self.topics = [f"I{c}/{p}" for p, c in zip(self.topic_prefix,
                                                       self.topic_category)]
        else:
            self.topic_prefix = list(prefixes)
            self.topic_category = [None] * n
            self.topics = list(prefixes)
        self.level = [LEVEL_LEN.index(len(p)) for p in self.topic_prefix]
        self.known = [since] * len(self.topics)      # last seq queued or delivered
        self.delivered = [since] * len(self.topics)  # last seq handed to the caller
        self.queue = collections.deque()            # events ready to deliver
        self.head = 0                   # broker head seq as last heard
        self.epoch = epoch              # store epoch followed; 0 = not known yet
        self.broker_epoch = 0           # the broker's epoch as last heard
        self.lineage = None             # LineageChanged once one was found
        self.extra = ""                 # caller's text kept with the checkpoint
        self.stats = SubscriberStats()
        self.keys = keys
        self.sync_limit = sync_limit
        self.omit_restricted = omit_restricted
        self.on_restore = on_restore
        self.on_rebaseline = on_rebaseline
        self.checkpoint_path = checkpoint
        if checkpoint:
            self._checkpoint_load(checkpoint)
        self._cli = Client(sync_endpoint, keys=keys, timeout=timeout, retries=retries)
        self._ctx = zmq.Context()
        self._sock = None
        self._watch = None
        try:
            sock = self._ctx.socket(zmq.SUB)
            self._sock = sock
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, rcvhwm)
            apply_curve(sock, keys)
            self._watch = Watch(self._ctx, sock)
            sock.connect(feed_endpoint)
            # Clone pattern: subscribe first, then catch up
            for t in self.topics:
                sock.setsockopt(zmq.SUBSCRIBE, t.encode())
            for i in range(len(self.topics)):
                try:
                    self._pull(i, None)
                except LineageChanged:
                    break       # next() reports it; self.lineage says what
            now = time.monotonic()
            self.heard = [now] * len(self.topics)   # last heartbeat or event per topic
            self._served = [False] * len(self.topics)  # a heartbeat of the topic arrived
            self._warned = 0.0
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_bundle(cls, path, prefixes, feed_endpoint=None, sync_endpoint=None, **kw):
        """A Subscriber with the keys and endpoints of an enrolment bundle (a
        district identity's); endpoints given here win over the bundle's."""
        b = load_bundle(path)
        return cls(feed_endpoint or b.feed_endpoint, sync_endpoint or b.upload_endpoint,
                   prefixes, keys=b.keys, **kw)

    def close(self):
        """Close the sockets (without a checkpoint). Safe to call twice."""
        if self._sock is not None:
            if self._watch is not None:
                self._watch.stop()
            self._sock.close(0)
            self._sock = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        if getattr(self, "_cli", None) is not None:
            self._cli.close()
            self._cli = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- positions --------------------------------------------------------

    def position(self, i=0):
        """The last seq delivered for topic i (prefix i without categories)."""
        return self.delivered[i]

    def wants(self, i, ev):
        """Is ev one of topic i's events: under its prefix and, for an
        incident topic, an incident of its category?"""
        if not ev.grid_code.startswith(self.topic_prefix[i]):
            return False
        if not self.incidents:
            return True
        return (ev.kind == pb.RECORD_KIND_INCIDENT and ev.record.WhichOneof("body") == "incident"
                and ev.record.incident.category == self.topic_category[i])

    def topic_index(self, ev):
        """The topic ev belongs to, or -1."""
        for i in range(len(self.topics)):
            if self.wants(i, ev):
                return i
        return -1

    # -- lineage ----------------------------------------------------------

    def _lineage_check(self, epoch, head):
        """A sync reply said: the store has this epoch and head now. Raise
        LineageChanged (and remember it) when that is another store's."""
        if self.lineage is not None:
            raise self.lineage
        if epoch:
            self.broker_epoch = epoch
        if epoch and self.epoch and epoch != self.epoch:
            position = max(self.known)
            msg = (f"the broker's store has epoch {epoch:016x}, not {self.epoch:016x} as "
                   f"followed (broker head {head}, our position {position}): it was "
                   f"restored from a backup or replaced")
        else:
            behind = [i for i, k in enumerate(self.known) if head < k]
            if not behind:
                if epoch and not self.epoch:
                    self.epoch = epoch      # first contact, or a checkpoint from before epochs
                return
            position = self.known[behind[0]]
            msg = (f"the broker's head seq {head} is below our position {position} (prefix "
                   f"\"{self.topics[behind[0]]}\"): its store was restored from a backup "
                   f"or replaced")
        self.lineage = LineageChanged(msg, epoch=self.epoch, broker_epoch=self.broker_epoch,
                                      head_seq=head, position=position)
        raise self.lineage

    def _lineage_suspect(self, epoch, head):
        """Does a heartbeat's epoch or head disagree with us? Only a
        suspicion: a heartbeat read late can name an older head or epoch."""
        if epoch and epoch != self.epoch:
            return True
        return any(head < k for k in self.known)

    def _lineage_confirm(self):
        """Ask the sync service for the epoch and head now."""
        r = self._cli.sync([self.topic_prefix[0]], since_seq=self.known[0], limit=1,
                           omit_restricted=self.omit_restricted)
        self._lineage_check(r.store_epoch, r.head_seq)

    # -- sync service -----------------------------------------------------

    def _pull(self, p, target):
        """Queue the events of topic p after known[p] until known[p] >= target
        (None: until the log is read to its head). Raises GapError when the
        log ends before target. For an incident topic the sync service also
        returns other events of the prefix (other kinds and categories,
        unless the key is a department's), which are skipped; and target may
        be a seq that is not one of the topic's (incident_prev_seq and its
        heartbeat's last seq are only never too low), so reading the log to
        its head is success, and the position moves to next_seq: nothing of
        the topic lies before it that was not queued."""
        since = self.known[p]
        while True:
            r = self._cli.sync([self.topic_prefix[p]], since_seq=since, limit=self.sync_limit,
                               omit_restricted=self.omit_restricted)
            # before taking anything: these could be another store's events
            self._lineage_check(r.store_epoch, r.head_seq)
            self.head = max(self.head, r.head_seq)
            for ev in r.events:
                if ev.seq <= self.known[p] or not self.wants(p, ev):
                    continue
                self.queue.append(ev)
                self.known[p] = ev.seq
                self.stats.pulled += 1
            if target is not None and self.known[p] >= target:
                return
            if self.incidents and r.next_seq >= r.head_seq:
                self.known[p] = max(self.known[p], r.next_seq)
                return
            if r.next_seq >= r.head_seq or (not r.events and r.next_seq <= since):
                if target is not None and self.known[p] < target:
                    raise GapError(f"the sync service has nothing under \"{self.topics[p]}\""
                                   f" up to seq {target}, which the feed announced")
                return
            since = r.next_seq

    # -- live feed --------------------------------------------------------

    def _on_live(self, data):
        """Handle one live message body; may queue events or repair a gap."""
        try:
            fm = pb.FeedMessage.FromString(data)
        except Exception:   # a DecodeError: the next heartbeat tells if we lost one
            return
        body = fm.WhichOneof("body")
        if body == "event":
            ev = fm.event
            p = self.topic_index(ev)
            if p < 0:
                return
            self.heard[p] = time.monotonic()
            if ev.seq <= self.known[p]:
                self.stats.duplicates += 1
                return
            # prev is the prefix's event before this one: at or before our
            # position, nothing lies between (our position need not be an
            # event of the prefix); after it, or missing, we missed something.
            # An incident topic's chain is the message's incident_prev_seq
            # (never too low), not the event's, which counts every kind.
            lv = self.level[p]
            chain = fm.incident_prev_seq if self.incidents else ev.prev_seq
            prev = chain[lv] if lv < len(chain) else None
            if prev is not None and prev <= self.known[p]:
                self.queue.append(ev)
                self.known[p] = ev.seq
                self.stats.live += 1
            else:
                self.stats.gaps += 1
                self._pull(p, ev.seq)
        elif body == "heartbeat":
            hb = fm.heartbeat
            self.stats.heartbeats += 1
            if self._lineage_suspect(hb.store_epoch, hb.head_seq):
                self._lineage_confirm()     # a late heartbeat, or a restored store
            self.head = max(self.head, hb.head_seq)
            # heartbeats of longer prefixes match our subscription too: only
            # our own prefix's heartbeat says what we should have
            for p, topic in enumerate(self.topics):
                if hb.prefix == topic:
                    self.heard[p] = time.monotonic()
                    self._served[p] = True
                    if hb.prefix_last_seq > self.known[p]:
                        self.stats.gaps += 1
                        self._pull(p, hb.prefix_last_seq)
                    break

    def next(self, timeout=None):
        """The next event (a pb.ChangeEvent), in seq order per prefix, each
        exactly once; None when none came within timeout seconds (None =
        wait for ever). Raises LineageChanged (every call, until
        rebaseline()), AuthError when the feed's handshake was refused
        (nothing more can arrive), GapError, and the sync Client's errors."""
        if self.lineage is not None:
            raise self.lineage
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._watch.pair, zmq.POLLIN)
        while not self.queue:
            # take what is already queued without a poll: under load the next
            # message is usually there
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                if deadline is None:
                    wait = -1
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = max(1, int(left * 1000))
                ready = dict(poller.poll(None if wait < 0 else wait))
                if self._watch.pair in ready:
                    self._watch.drain()
                    if self._watch.refused:
                        raise AuthError(self._watch.refusal(self.keys is not None,
                                                            "the feed endpoint"))
                continue
            if len(frames) == 2:
                self._on_live(frames[1])
        ev = self.queue.popleft()
        p = self.topic_index(ev)
        if p >= 0:
            self.delivered[p] = ev.seq
        return ev

    def served(self):
        """True once a heartbeat of every topic followed has arrived since
        subscribing: the broker applied every subscription, so what it
        publishes from then on arrives live (as gs_sub_served)."""
        return all(self._served)

    def silence(self, warn_after):
        """A warning text when some topic has heard no heartbeat (nor event)
        for warn_after seconds and none was given in the last warn_after;
        else None. Its subscription was then refused (key revoked, or not
        allowed the prefix) or the feed is down. Call it between next()s."""
        now = time.monotonic()
        oldest = min(self.heard)
        if now - oldest < warn_after:
            self._warned = 0.0
            return None
        if self._warned and now - self._warned < warn_after:
            return None
        self._warned = now
        return (f"no heartbeat for {int(now - oldest + 0.999)} s: check enrolment (is the key "
                f"enrolled and active, and allowed these prefixes?)")

    def rebaseline(self):
        """Start over after LineageChanged: drop what is queued, set every
        position to 0, follow the broker's current epoch and catch up from
        the beginning. Whatever was built from earlier events describes a
        store that no longer exists and must be set aside first. Raises
        LineageChanged again if the store changed once more meanwhile."""
        self.queue.clear()
        self.known = [0] * len(self.topics)
        self.delivered = [0] * len(self.topics)
        self.epoch = self.broker_epoch
        self.head = 0
        self.lineage = None
        # the live feed stays subscribed; its copies of what is pulled here
        # are dropped as duplicates
        for i in range(len(self.topics)):
            self._pull(i, None)

    # -- checkpoint -------------------------------------------------------

    def _checkpoint_load(self, path):
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as e:
            raise GridsyncError(f"cannot read the checkpoint {path}: {e}") from e
        for line in lines:
            if line.startswith("extra "):
                self.extra = line[6:]
            elif line.startswith("epoch "):
                try:
                    self.epoch = int(line[6:], 16)
                except ValueError:
                    self.epoch = 0
                if self.epoch <= 0 or self.epoch >= 2**64:
                    # a damaged epoch must not pass for "unknown"
                    raise GridsyncError(f"the checkpoint {path} is damaged: bad epoch line "
                                        f"{line!r}")
            elif line.startswith('prefix "'):
                name, quote, rest = line[8:].partition('"')
                if not quote:
                    continue
                try:
                    seq = int(rest.split()[0])
                except (ValueError, IndexError) as e:
                    raise GridsyncError(f"the checkpoint {path} is damaged: bad prefix line "
                                        f"{line!r}") from e
                for i, t in enumerate(self.topics):
                    if t == name:
                        self.known[i] = self.delivered[i] = seq

    def checkpoint(self, extra=None):
        """Record that everything delivered so far is processed: write the
        checkpoint file durably (temporary file, fsync, rename, fsync of the
        directory), so that after a crash the file is the old checkpoint or
        the new one, never a mix. It holds the positions and the epoch
        followed (after LineageChanged still the old one, so a restart
        reports the change again). extra (one line of text), when given, is
        kept with it and read back into self.extra after a restart. Raises
        GridsyncError when any step fails (the old checkpoint is kept)."""
        path = self.checkpoint_path
        if not path:
            raise GridsyncError("this subscriber has no checkpoint file")
        if extra is not None:
            if "\n" in extra:
                raise ValueError("extra must be one line")
            self.extra = extra
        text = _CHECKPOINT_MAGIC + "\n"
        if self.epoch:      # the store lineage these positions belong to
            text += f"epoch {self.epoch:016x}\n"
        for p, seq in zip(self.topics, self.delivered):
            text += f"prefix \"{p}\" {seq}\n"
        if self.extra:
            text += f"extra {self.extra}\n"
        tmp = path + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                data = text.encode()
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise GridsyncError(f"cannot write the checkpoint {path}: {e.strerror}") from e
        # the rename is durable only once the directory entry is on disk
        try:
            dfd = os.open(os.path.dirname(os.path.abspath(path)),
                          os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            raise GridsyncError(f"cannot sync the directory of {path}: "
                                f"{e.strerror}") from e

    # -- the loop ---------------------------------------------------------

    def _on_lineage(self):
        """run()'s answer to a lineage change: raise it ("stop"), or set the
        old lineage aside through on_rebaseline and start over."""
        if self.on_restore != "rebaseline":
            raise self.lineage
        if self.on_rebaseline:
            self.on_rebaseline(self.lineage)
        self.rebaseline()
        if self.checkpoint_path:
            self.checkpoint()

    def run(self, handler, stop=None, checkpoint_every=1, idle=None):
        """Deliver every event to handler(event) and checkpoint after it
        returned, until stop(self) is true (checked after each event and
        whenever the feed is quiet, at least every 0.1 s; None = never).
        checkpoint_every: events per checkpoint write (a crash redelivers at
        most that many, so the handler must then be idempotent or keep its
        own position in the checkpoint's extra; 1 = after each event).
        idle(self), when given, is called whenever the feed is quiet.

        An exception from handler propagates, with the event not
        checkpointed: it is delivered again after a restart. On a lineage
        change: with on_restore "stop" LineageChanged propagates; with
        "rebaseline", on_rebaseline(exc) is called (set aside what was built
        from the old store there), then rebaseline() and a checkpoint of
        the new lineage, and following goes on from seq 0. A checkpoint is
        written before returning or raising, covering only what the handler
        finished."""
        pending = 0
        try:
            while True:
                # a lineage change comes first: stop() would judge old positions
                if self.lineage is not None:
                    try:
                        self._on_lineage()
                    except LineageChanged:
                        if self.on_restore != "rebaseline":
                            raise
                        # changed once more during the re-baseline: again
                    pending = 0
                    continue
                if stop is not None and stop(self):
                    break
                before = list(self.delivered)
                try:
                    ev = self.next(_SLICE_S)
                except LineageChanged:
                    continue
                if ev is None:
                    if pending and self.checkpoint_path:
                        self.checkpoint()
                        pending = 0
                    if idle:
                        idle(self)
                    continue
                try:
                    handler(ev)
                except BaseException:
                    # not finished: it stays first in line, and out of the checkpoint
                    self.queue.appendleft(ev)
                    self.delivered = before
                    raise
                pending += 1
                if self.checkpoint_path and pending >= checkpoint_every:
                    self.checkpoint()
                    pending = 0
        except BaseException:
            if pending and self.checkpoint_path:
                try:
                    self.checkpoint()
                except GridsyncError:
                    pass    # the first failure is the one to report
            raise
        if pending and self.checkpoint_path:
            self.checkpoint()
