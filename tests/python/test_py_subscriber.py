"""gridsync.Subscriber against the real gridsyncd in --insecure-dev mode:
exactly the uploaded events, live; a follower process killed (SIGKILL)
mid-stream and started again ends with every event once; a subscriber
whose live feed drops messages repairs the gaps from the sync service; a
store restored from a backup (gridctl backup, gridctl restore) is reported,
and re-baselined on request. Waits are on replies, child output and exits,
each bounded."""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

import gridsync
from gridsync import pb

import gs_pykit as kit

FOLLOWER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "py_follower.py")
GRIDFEED = os.environ.get("GS_GRIDFEED", "")


def next_event(sub, what="an event"):
    """The next event, waiting at most PATIENCE_S."""
    ev = sub.next(kit.PATIENCE_S)
    if ev is None:
        raise AssertionError(f"no {what} within {kit.PATIENCE_S} s")
    return ev


def output_seqs(path):
    with open(path) as f:
        return [int(line.split()[0]) for line in f]


class SubscriberTests(unittest.TestCase):
    def setUp(self):
        self.dir = kit.tmpdir()
        self.store = os.path.join(self.dir, "store")
        self.broker = None
        self.client = None
        self.children = []

    def tearDown(self):
        for p in self.children:
            if p.poll() is None:
                p.kill()
            p.wait()
            for s in (p.stdout, p.stderr):
                if s:
                    s.close()
        if self.client:
            self.client.close()
        if self.broker:
            self.broker.stop()
        kit.rmtree(self.dir)

    def start(self, fixed=False, extra=()):
        if fixed:
            self.broker = kit.start_fixed(self.store, extra=extra)
        else:
            self.broker = kit.Broker(self.store, extra=extra).start()
        self.client = gridsync.Client(self.broker.upload, timeout=5.0)

    def upload(self, records):
        with gridsync.Uploader(self.broker.upload, "dev-py", timeout=5.0) as up:
            return up.upload(records)

    def follower(self, *args, stdout=subprocess.DEVNULL):
        p = subprocess.Popen([sys.executable, FOLLOWER, "--feed", self.broker.feed,
                              "--upload", self.broker.upload, *args],
                             stdout=stdout, stderr=subprocess.PIPE,
                             preexec_fn=kit._die_with_parent)
        self.children.append(p)
        return p

    def wait_exit(self, p):
        try:
            return p.wait(kit.PATIENCE_S * 2)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError("the follower did not exit in time")

    def test_live_exactly_uploaded(self):
        """A subscriber of 440305 receives exactly the events of the records
        uploaded under it, once, in seq order, with the uploaded content;
        nothing of 440306."""
        self.start()
        with gridsync.Subscriber(self.broker.feed, self.broker.upload, "440305") as sub:
            acks = [self.upload(kit.households(10, first=10 * i)) for i in range(3)]
            # households go round GRIDS by number; GRIDS[3] is in 440306
            want = [(r.seq, r.record_key) for a in acks for r in a.results
                    if kit.GRIDS[int(r.record_key[2:]) % 4].startswith("440305")]
            got = []
            while len(got) < len(want):
                ev = next_event(sub)
                self.assertEqual(ev.op, pb.OPERATION_UPSERT)
                self.assertEqual(ev.record.household.household_id, ev.record_key)
                got.append((ev.seq, ev.record_key))
            self.assertEqual(got, want)
            # nothing else in between: the next event is the next upload's
            marker = self.upload([kit.household(kit.GRIDS[0], "H-MARK", 99999)])
            self.assertEqual(next_event(sub).seq, marker.results[0].seq)
            self.assertEqual(sub.position(), marker.results[0].seq)
            self.assertEqual(sub.stats.duplicates + sub.stats.live + sub.stats.pulled >=
                             len(want), True)

    def test_killed_and_restarted_ends_exact(self):
        """A follower process SIGKILLed mid-stream (once in its handler, after
        writing a line but before the checkpoint; once from outside while
        events stream in) and started again from its checkpoint ends with
        every event under its prefix once, in order: no loss, and no line
        the application had after its checkpoint written twice."""
        self.start()
        ck = os.path.join(self.dir, "feed.ckpt")
        out = os.path.join(self.dir, "feed.out")
        self.upload(kit.households(60))         # a backlog to catch up on
        common = ["--prefix", "4403", "--checkpoint", ck, "--output", out]

        # 1: killed in its handler, after its 70th line, mid live stream
        p = self.follower(*common, "--crash-after", "70")
        kit.read_line_until(p.stderr, "following", what="the follower")
        for i in range(6):
            self.upload(kit.households(10, first=100 + 10 * i))
        self.assertEqual(self.wait_exit(p), -signal.SIGKILL)
        self.assertTrue(os.path.exists(ck))

        # offline meanwhile: more uploads
        self.upload(kit.households(30, first=200))

        # 2: killed from outside after 25 more deliveries, while uploads go on
        p = self.follower(*common, stdout=subprocess.PIPE)
        kit.read_line_until(p.stderr, "following", what="the follower")
        for n in range(25):
            kit.read_line_until(p.stdout, "delivered", what="the follower")
        p.send_signal(signal.SIGKILL)
        self.assertEqual(self.wait_exit(p), -signal.SIGKILL)
        self.upload(kit.households(20, first=300))

        # 3: to the end
        want = kit.log_seqs(self.client, "4403")
        p = self.follower(*common, "--until-seq", str(want[-1]))
        self.assertEqual(self.wait_exit(p), 0)
        got = output_seqs(out)
        self.assertEqual(got, want)
        self.assertEqual(len(set(got)), len(got))

    def test_gap_repair(self):
        """A subscriber with receive HWM 2 that reads nothing while some 3 MB
        of events pass (the broker's feed send HWM 2 too) loses live
        messages, detects the gaps (prev_seq, heartbeats) and repairs them
        from the sync service: every seq once, in order."""
        self.start(extra=["--feed-sndhwm=2"])
        with gridsync.Subscriber(self.broker.feed, self.broker.upload, "", rcvhwm=2) as sub:
            big = []
            for i in range(2000):
                h = kit.household(kit.GRIDS[i % 4], f"B-{i:06d}", 20000 + i)
                for m in range(20):     # about 1.5 KB an event
                    p = h.household.members.add()
                    p.CopyFrom(h.household.members[0])
                    p.id_number, p.birth_date, p.sex = kit.idnum(500000 + i * 32 + m)
                    p.relation = pb.RELATION_CHILD
                big.append(h)
            for i in range(0, 2000, 500):
                ack = self.upload(big[i:i + 500])
                self.assertTrue(all(r.status == pb.RESULT_STATUS_ACCEPTED
                                    for r in ack.results), ack.results[0].message)
            head = ack.results[-1].seq
            expect = 1
            while expect <= head:
                ev = next_event(sub)
                self.assertEqual(ev.seq, expect)
                expect += 1
            self.assertGreater(sub.stats.gaps, 0)       # the HWMs did drop messages
            self.assertGreater(sub.stats.pulled, 0)     # and the sync service filled them

    def test_handler_failure_not_checkpointed(self):
        """run() checkpoints only what the handler finished: an exception from
        the handler propagates, its event stays out of the checkpoint and is
        delivered first again; a damaged checkpoint is refused."""
        self.start()
        ck = os.path.join(self.dir, "feed.ckpt")
        self.upload(kit.households(5))
        seen = []

        def handler(ev):
            if ev.seq == 3:
                raise RuntimeError("the district database is down")
            seen.append(ev.seq)

        with gridsync.Subscriber(self.broker.feed, self.broker.upload, "",
                                 checkpoint=ck) as sub:
            with self.assertRaises(RuntimeError):
                sub.run(handler)
            self.assertEqual(seen, [1, 2])
            with open(ck) as f:
                self.assertIn('prefix "" 2\n', f.read())
            self.assertEqual(sub.next(0).seq, 3)        # first in line again
        # a restart resumes after 2 and delivers 3, 4, 5
        with gridsync.Subscriber(self.broker.feed, self.broker.upload, "",
                                 checkpoint=ck) as sub:
            self.assertEqual(sub.position(), 2)
            sub.run(lambda ev: seen.append(ev.seq), stop=lambda s: s.position() >= 5)
        self.assertEqual(seen, [1, 2, 3, 4, 5])
        with open(ck) as f:
            text = f.read()
        self.assertIn('prefix "" 5\n', text)
        with open(ck, "w") as f:
            f.write(text.replace("epoch ", "epoch x"))
        with self.assertRaises(gridsync.GridsyncError) as cm:
            gridsync.Subscriber(self.broker.feed, self.broker.upload, "", checkpoint=ck)
        self.assertIn("damaged", str(cm.exception))

    @unittest.skipUnless(GRIDFEED, "a build without gridfeed")
    def test_checkpoint_shared_with_gridfeed(self):
        """The checkpoint has the C library's format: gridfeed resumes from a
        Python subscriber's checkpoint, and a Python subscriber from
        gridfeed's (with its extra)."""
        self.start()
        ck = os.path.join(self.dir, "feed.ckpt")
        out = os.path.join(self.dir, "gridfeed.jsonl")
        self.upload(kit.households(10))
        with gridsync.Subscriber(self.broker.feed, self.broker.upload, "4403",
                                 checkpoint=ck) as sub:
            sub.run(lambda ev: None, stop=lambda s: s.position() >= 4)
        self.upload(kit.households(10, first=10))
        want = kit.log_seqs(self.client, "4403")
        r = subprocess.run([GRIDFEED, "--feed", self.broker.feed, "--upload",
                            self.broker.upload, "--prefix", "4403", "--checkpoint", ck,
                            "--output", out, "--until-seq", str(want[-1]), "--quiet"],
                           capture_output=True, text=True, timeout=kit.PATIENCE_S * 2)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            self.assertEqual([json.loads(line)["seq"] for line in f],
                             [s for s in want if s > 4])
        ack = self.upload(kit.households(1, first=50))
        with gridsync.Subscriber(self.broker.feed, self.broker.upload, "4403",
                                 checkpoint=ck) as sub:
            self.assertEqual(sub.position(), want[-1])
            self.assertEqual(sub.extra, f"output_size={os.path.getsize(out)}")
            self.assertEqual(next_event(sub).seq, ack.results[0].seq)

    def test_silence_warns(self):
        """A feed that goes quiet (the broker stopped with SIGSTOP) makes
        silence() warn once per period; when heartbeats come again it stops."""
        self.start()
        with gridsync.Subscriber(self.broker.feed, self.broker.upload, "4403") as sub:
            self.assertIsNone(sub.silence(kit.PATIENCE_S))
            os.kill(self.broker.proc.pid, signal.SIGSTOP)
            try:
                warning, deadline = None, time.monotonic() + kit.PATIENCE_S
                while warning is None and time.monotonic() < deadline:
                    self.assertIsNone(sub.next(0.1))
                    warning = sub.silence(0.5)
                self.assertIsNotNone(warning, "no warning while the feed was silent")
                self.assertRegex(warning, r"^no heartbeat for \d+ s: check enrolment")
                self.assertIsNone(sub.silence(0.5))     # not again within the period
            finally:
                os.kill(self.broker.proc.pid, signal.SIGCONT)
            heard_before = sub.stats.heartbeats
            deadline = time.monotonic() + kit.PATIENCE_S
            while sub.stats.heartbeats == heard_before and time.monotonic() < deadline:
                self.assertIsNone(sub.next(0.1))
            self.assertGreater(sub.stats.heartbeats, heard_before)
            self.assertIsNone(sub.silence(0.5))

    def test_several_prefixes(self):
        """One subscriber follows a list of prefixes, each with its own
        position in the checkpoint; a restart resumes each where it was. A
        prefix inside another, or not at a level boundary, is refused."""
        for bad in (["440305", "440305001"], ["44030"], []):
            with self.assertRaises(ValueError):
                gridsync.Subscriber("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", bad)
        self.start()
        ck = os.path.join(self.dir, "feed.ckpt")
        prefixes = ["440305001", "440306"]
        acks = [self.upload(kit.households(8))]
        got = []

        def follow(until):
            with gridsync.Subscriber(self.broker.feed, self.broker.upload, prefixes,
                                     checkpoint=ck) as sub:
                sub.run(lambda ev: got.append(ev.seq),
                        stop=lambda s: len(got) >= until)
                return [sub.position(0), sub.position(1)]

        def ours(ack):
            return [r.seq for r in ack.results
                    if kit.GRIDS[int(r.record_key[2:]) % 4].startswith(tuple(prefixes))]

        # households go round GRIDS: 440305001 has seqs 1, 2, 5, 6, 440306 has 4, 8
        self.assertEqual(follow(len(ours(acks[0]))), [6, 8])
        acks.append(self.upload(kit.households(8, first=8)))
        want = ours(acks[0]) + ours(acks[1])
        self.assertEqual(follow(len(want)), [14, 16])
        # each prefix in seq order, each event once
        self.assertEqual(sorted(got), want)
        for p in prefixes:
            mine = [seq for seq in got if kit.GRIDS[(seq - 1) % 4].startswith(p)]
            self.assertEqual(mine, sorted(mine))
        with open(ck) as f:
            text = f.read()
        self.assertIn('prefix "440305001" 14\n', text)
        self.assertIn('prefix "440306" 16\n', text)

    def test_restored_store(self):
        """gridctl backup, more uploads, gridctl restore of the backup and new
        uploads that reuse the seqs: a live subscriber past the restored head
        gets LineageChanged naming both epochs; a follower restarted from its
        checkpoint stops with status 3; with on_restore "rebaseline" it sets
        the old output aside and writes the restored store's log from seq 0."""
        self.start(fixed=True)
        self.upload(kit.households(10))
        backup = os.path.join(self.dir, "backup")
        kit.gridctl(self.store, "backup", backup)
        self.upload(kit.households(10, first=10))
        ck = os.path.join(self.dir, "feed.ckpt")
        out = os.path.join(self.dir, "feed.out")
        common = ["--prefix", "", "--checkpoint", ck, "--output", out]
        p = self.follower(*common, "--until-seq", "20")
        self.assertEqual(self.wait_exit(p), 0)
        self.assertEqual(output_seqs(out), list(range(1, 21)))
        live = gridsync.Subscriber(self.broker.feed, self.broker.upload, "", since=0,
                                   timeout=1.0, retries=30)
        for seq in range(1, 21):
            self.assertEqual(next_event(live).seq, seq)
        old_epoch = live.epoch
        self.assertNotEqual(old_epoch, 0)

        # the restore: the broker stopped, the backup in place, started again
        self.client.close()
        self.client = None
        self.assertEqual(self.broker.stop(), 0)
        kit.gridctl(self.store, "restore", "--force", backup, self.store)
        self.broker = kit.Broker(self.store, upload=self.broker.upload,
                                 feed=self.broker.feed).start()
        self.client = gridsync.Client(self.broker.upload, timeout=5.0)
        self.upload(kit.households(5, first=500))        # seqs 11..15 again
        new_epoch = self.client.ping()[0].store_epoch
        self.assertNotIn(new_epoch, (0, old_epoch))

        # the live subscriber: its next heartbeat tells, the sync confirms
        with self.assertRaises(gridsync.LineageChanged) as cm:
            deadline = time.monotonic() + kit.PATIENCE_S
            while time.monotonic() < deadline:
                ev = live.next(0.5)
                self.assertTrue(ev is None or ev.seq > 20, "a seq of the old store again")
        self.assertEqual((cm.exception.epoch, cm.exception.broker_epoch),
                         (old_epoch, new_epoch))
        self.assertIn(f"epoch {new_epoch:016x}, not {old_epoch:016x}", str(cm.exception))
        with self.assertRaises(gridsync.LineageChanged):
            live.next(0)                                # every call, until rebaseline
        live.rebaseline()
        self.assertEqual([next_event(live).seq for _ in range(15)], list(range(1, 16)))
        self.assertEqual(live.epoch, new_epoch)
        live.close()

        # restarted from its checkpoint: stops with status 3, writes nothing
        p = self.follower(*common)
        line = kit.read_line_until(p.stderr, "lineage:", what="the follower")
        self.assertIn(f"epoch {new_epoch:016x}, not {old_epoch:016x}", line)
        self.assertEqual(self.wait_exit(p), 3)
        self.assertEqual(output_seqs(out), list(range(1, 21)))

        # re-baseline: the old lines aside, the restored log from seq 0
        p = self.follower(*common, "--rebaseline", "--until-seq", "15")
        kit.read_line_until(p.stderr, "rebaselined", what="the follower")
        self.assertEqual(self.wait_exit(p), 0)
        self.assertEqual(output_seqs(f"{out}.void-{old_epoch:016x}"), list(range(1, 21)))
        self.assertEqual(output_seqs(out), list(range(1, 16)))
        with open(ck) as f:
            self.assertIn(f"\nepoch {new_epoch:016x}\n", f.read())


if __name__ == "__main__":
    unittest.main()
