"""The Python client against the real gridsyncd with CURVE: identities
enrolled with the real gridctl (devices enrol --bundle), and everything
taken from their bundles. Uploads, a pull, a subscriber that receives
exactly the uploaded events and a follower killed and restarted that ends
exact; refused handshakes and out-of-scope requests give AuthError and
ServerError with messages a person can act on. A department's key follows
its incident topics (categories=): killed mid-stream and restarted, it ends
with exactly its categories' incidents, each once; gridfeed --category and
the Python subscriber resume from each other's checkpoint."""

import json
import os
import signal
import subprocess
import sys
import unittest

import zmq

import gridsync
from gridsync import pb

import gs_pykit as kit

FOLLOWER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "py_follower.py")
GRIDFEED = os.environ.get("GS_GRIDFEED", "")
STREET = "440305001"        # the department follows this street of its district


class CurveTests(unittest.TestCase):
    def setUp(self):
        self.dir = kit.tmpdir()
        self.store = os.path.join(self.dir, "store")
        self.broker = kit.Broker(self.store, secure=True).start()
        self.device = os.path.join(self.dir, "device.bundle")
        self.district = os.path.join(self.dir, "district.bundle")
        kit.gridctl(self.store, "devices", "enrol", "dev-py", "--collector", "col-py",
                    "--prefix", "440305", "--bundle", self.device,
                    "--endpoint", self.broker.upload)
        kit.gridctl(self.store, "devices", "enrol", "district-py", "--role", "district",
                    "--prefix", "440305", "--bundle", self.district,
                    "--endpoint", self.broker.upload, "--feed-endpoint", self.broker.feed)
        self.children = []

    def tearDown(self):
        for p in self.children:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stderr.close()
        self.broker.stop()
        kit.rmtree(self.dir)

    def department(self):
        """Enrol a department of categories 02 and 03 in 440305; its bundle."""
        path = os.path.join(self.dir, "fire.bundle")
        kit.gridctl(self.store, "devices", "enrol", "fire-py", "--role", "department",
                    "--department", "dept-fire", "--category", "02", "--category", "03",
                    "--prefix", "440305", "--bundle", path,
                    "--endpoint", self.broker.upload, "--feed-endpoint", self.broker.feed)
        return path

    def follower(self, *args, keys=None):
        p = subprocess.Popen([sys.executable, FOLLOWER, "--keys", keys or self.district, *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             preexec_fn=kit._die_with_parent)
        self.children.append(p)
        return p

    def test_bundles_end_to_end(self):
        """Nothing typed twice: the device uploads, pulls its grid, and the
        district system follows 440305, each from its bundle alone."""
        self.assertNotEqual(self.broker.server_key, "-")
        b = gridsync.load_bundle(self.district)
        self.assertEqual(b.keys.server_public, self.broker.server_key)
        self.assertEqual(b.device_id, "district-py")
        grids = kit.GRIDS[:3]       # all under 440305
        with gridsync.Subscriber.from_bundle(self.district, "440305") as sub, \
                gridsync.Uploader.from_bundle(self.device) as up:
            self.assertEqual(up.device_id, "dev-py")
            acks = [up.upload(kit.households(10, first=10 * i, grids=grids, device="dev-py"))
                    for i in range(2)]
            want = [r.seq for a in acks for r in a.results]
            self.assertEqual(len(want), 20)
            got = []
            while len(got) < len(want):
                ev = sub.next(kit.PATIENCE_S)
                self.assertIsNotNone(ev, "no event within the patience")
                self.assertEqual(ev.origin_device, "dev-py")
                got.append(ev.seq)
            self.assertEqual(got, want)
        with gridsync.Client.from_bundle(self.device) as c:
            ping, _ = c.ping()
            self.assertTrue(ping.secure and ping.registered)
            self.assertEqual((ping.device_id, list(ping.prefixes)), ("dev-py", ["440305"]))
            pulled = gridsync.pull(c, kit.GRIDS[0])
            self.assertEqual({k for (_, k) in pulled.records},
                             {f"H-{i:06d}" for i in range(0, 20, 3)})
            self.assertEqual(pulled.next_seq, 20)

    def test_follower_killed_and_restarted(self):
        """A follower with the district's bundle, SIGKILLed in its handler mid
        stream and started again, ends with every event once."""
        ck = os.path.join(self.dir, "feed.ckpt")
        out = os.path.join(self.dir, "feed.out")
        common = ["--prefix", "440305", "--checkpoint", ck, "--output", out]
        with gridsync.Uploader.from_bundle(self.device) as up:
            up.upload(kit.households(15, grids=kit.GRIDS[:3]))
            p = self.follower(*common, "--crash-after", "20")
            kit.read_line_until(p.stderr, "following", what="the follower")
            for i in range(3):
                up.upload(kit.households(5, first=100 + 5 * i, grids=kit.GRIDS[:3]))
            self.assertEqual(p.wait(kit.PATIENCE_S), -signal.SIGKILL)
            ack = up.upload(kit.households(5, first=200, grids=kit.GRIDS[:3]))
        head = ack.results[-1].seq
        p = self.follower(*common, "--until-seq", str(head))
        self.assertEqual(p.wait(kit.PATIENCE_S * 2), 0)
        with open(out) as f:
            self.assertEqual([int(line.split()[0]) for line in f], list(range(1, head + 1)))

    def test_department_killed_and_restarted(self):
        """A department follower (categories 02 and 03 in one street, on its
        incident topics), SIGKILLed in its handler while incidents of every
        category and households arrive live, started again after more
        uploads, ends with exactly the incident events of 02 and 03 in the
        street, each once, and nothing else."""
        fire = self.department()
        ck = os.path.join(self.dir, "fire.ckpt")
        out = os.path.join(self.dir, "fire.out")
        common = ["--prefix", STREET, "--category", "02,03", "--checkpoint", ck,
                  "--output", out]
        grids = kit.GRIDS[:3]       # two in the street, one in the next
        with gridsync.Uploader.from_bundle(self.device) as up:
            up.upload(kit.mixed(12, grids=grids))
            p = self.follower(*common, "--crash-after", "5", keys=fire)
            kit.read_line_until(p.stderr, "following", what="the follower")
            for i in range(4):
                up.upload(kit.mixed(24, first=100 + 24 * i, grids=grids))
            self.assertEqual(p.wait(kit.PATIENCE_S), -signal.SIGKILL)
            up.upload(kit.mixed(24, first=300, grids=grids))
        with gridsync.Client.from_bundle(self.device) as c:
            want = [s for s, _ in kit.incident_events(c, STREET, ("02", "03"))]
            self.assertGreater(len(kit.log_seqs(c, STREET)), 2 * len(want))
        self.assertGreater(len(want), 10)
        p = self.follower(*common, "--until-count", str(len(want)), keys=fire)
        self.assertEqual(p.wait(kit.PATIENCE_S * 2), 0)
        with open(out) as f:
            lines = [line.split() for line in f]
        self.assertEqual(sorted(int(w[0]) for w in lines), want)
        self.assertTrue(all(w[1].startswith(STREET) and w[2].startswith("E-") for w in lines))
        with open(ck) as f:
            text = f.read()
        self.assertIn(f'prefix "I02/{STREET}" ', text)
        self.assertIn(f'prefix "I03/{STREET}" ', text)

    @unittest.skipUnless(GRIDFEED, "a build without gridfeed")
    def test_department_checkpoint_shared_with_gridfeed(self):
        """The department's checkpoint names its incident topics as gridfeed
        --category does: gridfeed resumes from a Python department's
        checkpoint, and the Python subscriber from gridfeed's."""
        fire = self.department()
        ck = os.path.join(self.dir, "fire.ckpt")
        out = os.path.join(self.dir, "fire.jsonl")
        grids = kit.GRIDS[:3]
        cats = ["02", "03"]
        with gridsync.Uploader.from_bundle(self.device) as up, \
                gridsync.Client.from_bundle(self.device) as c:
            up.upload(kit.mixed(48, grids=grids))
            seen = []
            with gridsync.Subscriber.from_bundle(fire, STREET, categories=cats,
                                                 checkpoint=ck) as sub:
                self.assertEqual(sub.topics, [f"I02/{STREET}", f"I03/{STREET}"])
                sub.run(seen.append, stop=lambda s: len(seen) >= 3)
                python_pos = {cats[i]: sub.position(i) for i in range(2)}
            self.assertTrue(all(ev.kind == pb.RECORD_KIND_INCIDENT and
                                ev.record.incident.category in cats for ev in seen))
            ack = up.upload(kit.mixed(48, first=100, grids=grids))
            head = ack.results[-1].seq
            events = kit.incident_events(c, STREET, cats)
            r = subprocess.run([GRIDFEED, "--keys", fire, "--prefix", STREET, "--category",
                                "02,03", "--checkpoint", ck, "--output", out,
                                "--until-seq", str(head), "--quiet"],
                               capture_output=True, text=True, timeout=kit.PATIENCE_S * 2)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f:
                got = sorted(json.loads(line)["seq"] for line in f)
            self.assertEqual(got, [s for s, cat in events if s > python_pos[cat]])
            self.assertEqual(len(seen) + len(got), len(events))
            live = up.upload([kit.incident(kit.GRIDS[0], "E-live", "03")]).results[0].seq
            with gridsync.Subscriber.from_bundle(fire, STREET, categories=cats,
                                                 checkpoint=ck) as sub:
                self.assertEqual(sub.extra, f"output_size={os.path.getsize(out)}")
                for i, cat in enumerate(cats):
                    self.assertEqual(sub.position(i), max(s for s, c2 in events if c2 == cat))
                ev = sub.next(kit.PATIENCE_S)
                self.assertIsNotNone(ev, "no event within the patience")
                self.assertEqual((ev.seq, ev.record_key), (live, "E-live"))
                # once the broker applied both subscriptions, a new incident
                # comes off its incident topic, not by sync
                while not sub.served():
                    self.assertIsNone(sub.next(0.1))
                pulled = sub.stats.pulled
                live = up.upload([kit.incident(kit.GRIDS[1], "E-live2", "02")]).results[0].seq
                ev = sub.next(kit.PATIENCE_S)
                self.assertIsNotNone(ev, "no event within the patience")
                self.assertEqual((ev.seq, ev.record_key), (live, "E-live2"))
                self.assertEqual((sub.stats.live, sub.stats.pulled), (1, pulled))

    def test_department_bad_categories(self):
        """A category that is not 1 to 8 letters or digits, or one given
        twice, is a ValueError before anything is sent."""
        fire = self.department()
        with self.assertRaises(ValueError):
            gridsync.Subscriber.from_bundle(fire, STREET, categories=["0/2"])
        with self.assertRaises(ValueError):
            gridsync.Subscriber.from_bundle(fire, STREET, categories=["02", "02"])
        with self.assertRaises(ValueError):
            gridsync.Subscriber.from_bundle(fire, STREET, categories=["123456789"])

    def test_refusals(self):
        """A plaintext client, and a key that is not enrolled, get AuthError
        at once with the cause; the district may not upload, nor read
        outside its prefixes (ServerError with the broker's reason)."""
        with gridsync.Client(self.broker.upload, timeout=kit.PATIENCE_S, retries=0) as c:
            with self.assertRaises(gridsync.AuthError) as cm:
                c.ping()
        self.assertIn("is in CURVE mode and this client has no keys", str(cm.exception))
        pub, sec = zmq.curve_keypair()
        stranger = gridsync.CurveKeys(self.broker.server_key, pub.decode(), sec.decode())
        with gridsync.Client(self.broker.upload, keys=stranger, timeout=kit.PATIENCE_S,
                             retries=0) as c:
            with self.assertRaises(gridsync.AuthError) as cm:
                c.ping()
        self.assertIn("it does not know this key", str(cm.exception))
        with self.assertRaises(gridsync.AuthError):
            gridsync.Subscriber(self.broker.feed, self.broker.upload, "440305", keys=stranger,
                                timeout=kit.PATIENCE_S, retries=0)
        with gridsync.Uploader.from_bundle(self.district) as up:
            with self.assertRaises(gridsync.ServerError) as cm:
                up.upload(kit.households(1, device="district-py"))
        self.assertEqual(cm.exception.reason, pb.REASON_UNAUTHORISED)
        with gridsync.Client.from_bundle(self.district) as c:
            with self.assertRaises(gridsync.ServerError) as cm:
                c.sync(["440306"])
            self.assertEqual(cm.exception.reason, pb.REASON_OUT_OF_SCOPE)
            with self.assertRaises(gridsync.ServerError) as cm:
                gridsync.pull(c, "440306001001001")
            self.assertEqual(cm.exception.reason, pb.REASON_OUT_OF_SCOPE)


if __name__ == "__main__":
    unittest.main()
