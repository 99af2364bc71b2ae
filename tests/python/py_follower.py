"""A district system built on gridsync.Subscriber, for the tests: it
appends one line per event ("SEQ GRID KEY VERSION") to --output and keeps
the output's size in the checkpoint's extra, so that after a crash the
lines written after the last checkpoint are cut off and written again
(exactly once, as gridfeed does). Prints "following" on stderr once it has
caught up, and "delivered SEQ" on stdout after writing each event.

--category C[,C2...]: follow the incident topics of these categories in the
prefix (a department), with the order checked per topic; --until-count N:
exit 0 once the output holds N lines.
--crash-after N: SIGKILL itself after writing its N-th line, before the
checkpoint (the worst moment). --until-seq S: exit 0 once every event up to
seq S is written (S must be an event under the prefix). --rebaseline:
--on-restore rebaseline (the output is moved aside as OUTPUT.void-EPOCH).
Exit status 3: the broker's store was restored or replaced; 4: an event
came out of order.
"""

import argparse
import os
import signal
import sys

import gridsync


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--feed")
    ap.add_argument("--upload")
    ap.add_argument("--keys")
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--crash-after", type=int, default=0)
    ap.add_argument("--until-seq", type=int, default=0)
    ap.add_argument("--category", default="")
    ap.add_argument("--until-count", type=int, default=0)
    ap.add_argument("--rebaseline", action="store_true")
    a = ap.parse_args()

    kw = dict(checkpoint=a.checkpoint, on_restore="rebaseline" if a.rebaseline else "stop",
              timeout=2.0, categories=[c for c in a.category.split(",") if c])
    if a.keys:
        sub = gridsync.Subscriber.from_bundle(a.keys, a.prefix, feed_endpoint=a.feed,
                                              sync_endpoint=a.upload, **kw)
    else:
        sub = gridsync.Subscriber(a.feed, a.upload, a.prefix, **kw)
    # lines written after the last checkpoint are cut off: they come again
    if not os.path.exists(a.output):
        open(a.output, "wb").close()
    os.truncate(a.output, int(sub.extra.partition("output_size=")[2] or 0))
    out = open(a.output, "ab")
    written = 0
    last = {}               # last seq written per topic: seq order holds per topic
    with open(a.output, "rb") as f:
        lines = sum(1 for _ in f)

    def void(exc):
        # everything written so far describes a store that no longer exists
        nonlocal out, last, lines
        out.close()
        os.rename(a.output, f"{a.output}.void-{exc.epoch:016x}")
        out = open(a.output, "ab")
        last = {}
        lines = 0
        sub.extra = "output_size=0"
        print(f"rebaselined: {exc}", file=sys.stderr, flush=True)

    sub.on_rebaseline = void

    def handler(ev):
        nonlocal written, lines
        t = sub.topic_index(ev)
        if ev.seq <= last.get(t, 0):
            print(f"out of order: {ev.seq} after {last[t]}", file=sys.stderr, flush=True)
            os._exit(4)
        last[t] = ev.seq
        out.write(f"{ev.seq} {ev.grid_code} {ev.record_key} {ev.version}\n".encode())
        out.flush()
        os.fsync(out.fileno())
        written += 1
        lines += 1
        print(f"delivered {ev.seq}", flush=True)
        if a.crash_after and written == a.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)
        # the checkpoint written after this returns records the output's size
        sub.extra = f"output_size={out.tell()}"

    print("following", file=sys.stderr, flush=True)
    try:
        sub.run(handler, stop=lambda s: (bool(a.until_seq) and s.position(0) >= a.until_seq)
                or (bool(a.until_count) and lines >= a.until_count))
    except gridsync.LineageChanged as e:
        print(f"lineage: {e}", file=sys.stderr, flush=True)
        return 3
    finally:
        sub.close()
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
