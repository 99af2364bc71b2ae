"""gs_pykit: what the Python client's tests share, the counterpart of
tests/support/gs_testkit.c. Starts the real gridsyncd as a child process on
loopback with a temporary store, waits for its "event=ready" log line (the
daemon's own signal, not a sleep), runs the real gridctl, and makes valid
households. Every wait is bounded.

The programs come from the environment CTest sets: GS_GRIDSYNCD and
GS_GRIDCTL (paths), and PYTHONPATH (the package and its generated module).
"""

import ctypes
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from gridsync import pb

GRIDSYNCD = os.environ.get("GS_GRIDSYNCD", "")
GRIDCTL = os.environ.get("GS_GRIDCTL", "")
PATIENCE_S = 20.0       # the longest any single wait of a test may take

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # a test that dies takes its children along
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def tmpdir():
    return tempfile.mkdtemp(prefix="gs-pytest-")


def free_port():
    """A free loopback TCP port, for endpoints that must stay the same
    across a broker restart. Taken below the kernel's ephemeral range when
    possible (as gs_tk_free_port does), so that no outgoing connection (a
    client reconnecting to a stopped broker) can be given it as its local
    port meanwhile."""
    lo = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random(os.getpid() ^ time.time_ns())
    for attempt in range(64):
        port = rng.randrange(lo - 10000, lo - 1000) if attempt < 63 and lo > 11000 else 0
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise AssertionError("no free loopback port")


def read_line_until(stream, want, patience=PATIENCE_S, what="child"):
    """Read lines from a child's pipe (a binary file object) until one
    contains want; returns that line. Fails (AssertionError) when the time
    is up or the pipe ends first."""
    deadline = time.monotonic() + patience
    fd = stream.fileno()
    line = b""
    seen = []                   # the lines before, for the failure message
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no line with {want!r} from {what} within {patience} s; "
                                 f"it printed: {b''.join(seen[-20:]).decode(errors='replace')}")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        c = os.read(fd, 1)      # byte by byte: nothing after the line is consumed
        if not c:
            raise AssertionError(f"{what} ended before printing {want!r}; it printed: "
                                 f"{b''.join(seen[-20:]).decode(errors='replace')}")
        if c != b"\n":
            line += c
            continue
        if want.encode() in line:
            return line.decode(errors="replace")
        seen.append(line + c)
        line = b""


class Broker:
    """A gridsyncd child. start() waits for its ready line; its log goes to
    STORE.log. secure: CURVE (else --insecure-dev)."""

    def __init__(self, store, secure=False, extra=(), upload=None, feed=None):
        self.store = store
        self.secure = secure
        self.extra = list(extra)
        self.upload = upload        # endpoints: fixed ones survive a restart
        self.feed = feed
        self.server_key = ""
        self.proc = None
        self._drain = None
        self.log_path = store + ".log"

    def start(self):
        assert GRIDSYNCD, "GS_GRIDSYNCD must name the gridsyncd binary"
        argv = [GRIDSYNCD, f"--store={self.store}",
                f"--upload-endpoint={self.upload or 'tcp://127.0.0.1:*'}",
                f"--feed-endpoint={self.feed or 'tcp://127.0.0.1:*'}",
                "--metrics-port=0", "--heartbeat-ms=100"]
        if not self.secure:
            argv.append("--insecure-dev")
        argv += self.extra
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        with open(self.log_path, "ab") as log:
            try:
                line = read_line_until(self.proc.stderr, "event=ready", what="gridsyncd")
            except AssertionError:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"gridsyncd did not start; see {self.log_path}")
            log.write(line.encode() + b"\n")
        fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
        self.upload, self.feed = fields["upload"], fields["feed"]
        self.server_key = fields.get("server_key", "-")
        self._drain = threading.Thread(target=self._copy_log, daemon=True)
        self._drain.start()
        return self

    def _copy_log(self):
        with open(self.log_path, "ab") as log:
            for line in self.proc.stderr:
                log.write(line)

    def stop(self, sig=signal.SIGTERM):
        """Send sig and wait for the exit (bounded); returns the exit code."""
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        t0 = time.monotonic()
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # a hang, not slowness: say where it is before the log goes
            print(f"gridsyncd (pid {self.proc.pid}) still running 60 s after signal {sig}: "
                  f"killed. The end of its log:", file=sys.stderr, flush=True)
            with open(self.log_path, errors="replace") as f:
                sys.stderr.write("".join(f.readlines()[-20:]))
            if shutil.which("gdb"):
                subprocess.run(["gdb", "-batch", "-p", str(self.proc.pid), "-ex",
                                "thread apply all bt"], stdout=sys.stderr,
                               stderr=subprocess.DEVNULL, timeout=60)
            self.proc.kill()
            rc = self.proc.wait()
        if time.monotonic() - t0 > 10:
            print(f"gridsyncd took {time.monotonic() - t0:.0f} s to stop after signal {sig}",
                  file=sys.stderr, flush=True)
        self._drain.join(timeout=10)
        self.proc.stderr.close()
        self.proc = None
        return rc


def start_fixed(store, secure=False, extra=()):
    """A broker on fixed free ports (so that a restart brings it back where
    its clients reconnect); another process may take a port between the
    probe and the bind, so fresh ports are tried."""
    last = None
    for _ in range(3):
        up, feed = free_port(), free_port()
        if up == feed:
            continue
        b = Broker(store, secure, extra, f"tcp://127.0.0.1:{up}", f"tcp://127.0.0.1:{feed}")
        try:
            return b.start()
        except AssertionError as e:
            last = e
    raise last


def gridctl(store, *args, check=True):
    """Run gridctl --store store args; returns the CompletedProcess (text)."""
    assert GRIDCTL, "GS_GRIDCTL must name the gridctl binary"
    r = subprocess.run([GRIDCTL, "--store", store, *args], capture_output=True, text=True,
                       timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"gridctl {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r


# -- records ---------------------------------------------------------------

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def idnum(seed):
    """A valid resident ID number (GB 11643) unique per seed, its birth date
    and sex, as gs_tk_idnum makes them."""
    year = 1940 + seed % 60
    month = 1 + (seed // 60) % 12
    day = 1 + (seed // 720) % 28
    seq = (seed // 20160) % 1000
    first = f"440305{year:04d}{month:02d}{day:02d}{seq:03d}"
    check = "10X98765432"[sum(int(c) * w for c, w in zip(first, _WEIGHTS)) % 11]
    return first + check, f"{year:04d}-{month:02d}-{day:02d}", (
        pb.SEX_MALE if seq % 2 else pb.SEX_FEMALE)


def household(grid, hid, seed, device="dev-py", base_version=0, name="张三"):
    """A valid household with one member in grid, with its own address code."""
    rec = pb.Record()
    h = rec.household
    h.household_id = hid
    h.grid_code = grid
    h.address_code = f"ADDR-{hid}"
    m = h.members.add()
    m.id_type = pb.ID_TYPE_RESIDENT_CARD
    m.id_number, m.birth_date, m.sex = idnum(seed)
    m.name = name
    m.population_type = pb.POPULATION_TYPE_REGISTERED
    m.residence_status = pb.RESIDENCE_STATUS_PRESENT_REGISTERED
    m.relation = pb.RELATION_HEAD
    h.meta.collector_id = "col-py"
    h.meta.device_id = device
    h.meta.collected_at = 1760000000000
    h.meta.base_version = base_version
    return rec


GRIDS = ("440305001001001", "440305001001002", "440305002001001", "440306001001001")


def households(n, first=0, grids=GRIDS, device="dev-py"):
    """n households numbered from first, spread over grids."""
    return [household(grids[i % len(grids)], f"H-{i:06d}", 10000 + i, device)
            for i in range(first, first + n)]


def incident(grid, iid, category, device="dev-py"):
    """A valid incident of category reported in grid (status REPORTED)."""
    rec = pb.Record()
    inc = rec.incident
    inc.incident_id = iid
    inc.grid_code = grid
    inc.address = f"{grid} 1号"
    inc.category = category
    inc.severity = pb.INCIDENT_SEVERITY_GENERAL
    inc.description = "消防通道堵塞"
    inc.reporter = "col-py"
    inc.status = pb.INCIDENT_STATUS_REPORTED
    inc.meta.collector_id = "col-py"
    inc.meta.device_id = device
    inc.meta.collected_at = 1760000000000
    return rec


CATEGORIES = ("01", "02", "03", "04")


def mixed(n, first=0, grids=GRIDS, device="dev-py"):
    """n records numbered from first over grids: every other one a
    household, the others incidents whose category cycles over CATEGORIES."""
    recs = []
    for i in range(first, first + n):
        grid = grids[i % len(grids)]
        if i % 2:
            recs.append(incident(grid, f"E-{i:06d}", CATEGORIES[(i // 2) % len(CATEGORIES)],
                                 device))
        else:
            recs.append(household(grid, f"H-{i:06d}", 10000 + i, device))
    return recs


def incident_events(client, prefix, categories):
    """(seq, category) of the incident events of categories under prefix,
    in seq order, through sync with a key that reads every kind."""
    seqs, since = [], 0
    while True:
        r = client.sync([prefix], since_seq=since)
        seqs += [(ev.seq, ev.record.incident.category) for ev in r.events
                 if ev.kind == pb.RECORD_KIND_INCIDENT
                 and ev.record.incident.category in categories]
        since = r.next_seq
        if since >= r.head_seq:
            return seqs


def log_seqs(client, prefix):
    """Every seq under prefix in the broker's log, in order, through sync."""
    seqs, since = [], 0
    while True:
        r = client.sync([prefix], since_seq=since)
        seqs += [ev.seq for ev in r.events]
        since = r.next_seq
        if since >= r.head_seq:
            return seqs


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)
