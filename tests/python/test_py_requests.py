"""The Python client's request side against the real gridsyncd in
--insecure-dev mode: uploads with Lazy Pirate retries and idempotent
upload_ids, pulls of one grid, enrolment bundles, and the errors a caller
sees. Every wait is bounded by the client's own timeouts."""

import os
import signal
import threading
import unittest

import zmq

import gridsync
from gridsync import pb

import gs_pykit as kit


class RequestTests(unittest.TestCase):
    def setUp(self):
        self.dir = kit.tmpdir()
        self.broker = kit.Broker(os.path.join(self.dir, "store")).start()
        self.client = gridsync.Client(self.broker.upload, timeout=5.0)

    def tearDown(self):
        self.client.close()
        if self.broker.proc and self.broker.proc.poll() is None:
            os.kill(self.broker.proc.pid, signal.SIGCONT)   # a test that stopped it
        self.broker.stop()
        kit.rmtree(self.dir)

    def test_upload_and_dedup(self):
        """An Ack with one ACCEPTED result per record; the same upload_id
        again gets the identical Ack and stores nothing."""
        with gridsync.Uploader(self.broker.upload, "dev-py") as up:
            recs = kit.households(5)
            uid = up.new_upload_id()
            ack = up.upload(recs, upload_id=uid)
            self.assertEqual([r.status for r in ack.results], [pb.RESULT_STATUS_ACCEPTED] * 5)
            self.assertEqual([r.seq for r in ack.results], [1, 2, 3, 4, 5])
            again = up.upload(recs, upload_id=uid)
            self.assertEqual(again, ack)
            self.assertEqual(kit.log_seqs(self.client, ""), [1, 2, 3, 4, 5])
            # the same records under a new upload_id: stored already, unchanged
            fresh = up.upload(recs)
            self.assertEqual([r.status for r in fresh.results],
                             [pb.RESULT_STATUS_UNCHANGED] * 5)
            self.assertEqual(up.stats.resends, 0)

    def test_upload_retries_stopped_broker(self):
        """The broker stops answering (SIGSTOP) while an upload is in flight:
        the Uploader resends the same bytes on fresh sockets; once the broker
        runs again, exactly one copy is stored and every attempt is answered
        with the same Ack."""
        retried = threading.Event()
        up = gridsync.Uploader(self.broker.upload, "dev-py", timeout=0.3, retries=200,
                               on_retry=lambda attempt, why: retried.set())
        up.upload(kit.households(1, first=100))   # connected: the next send goes on the wire
        recs = kit.households(20)
        os.kill(self.broker.proc.pid, signal.SIGSTOP)
        result = {}

        def send():
            try:
                result["ack"] = up.upload(recs, upload_id="retry-upload-1")
            except gridsync.GridsyncError as e:
                result["error"] = e

        t = threading.Thread(target=send)
        t.start()
        try:
            self.assertTrue(retried.wait(kit.PATIENCE_S), "no resend while the broker stopped")
        finally:
            os.kill(self.broker.proc.pid, signal.SIGCONT)
        t.join(kit.PATIENCE_S)
        self.assertFalse(t.is_alive())
        up.close()
        self.assertNotIn("error", result)
        ack = result["ack"]
        self.assertGreaterEqual(up.stats.resends, 1)
        self.assertEqual([r.status for r in ack.results], [pb.RESULT_STATUS_ACCEPTED] * 20)
        self.assertEqual(kit.log_seqs(self.client, ""), list(range(1, 22)))
        # a late resend of the same upload, after all: the same Ack
        with gridsync.Uploader(self.broker.upload, "dev-py") as again:
            self.assertEqual(again.upload(recs, upload_id="retry-upload-1"), ack)
        self.assertEqual(kit.log_seqs(self.client, "")[-1], 21)

    def test_upload_waits_for_a_broker_to_start(self):
        """Nothing listens at first: the Uploader keeps resending until a
        broker starts on that endpoint, then gets its Ack."""
        store = os.path.join(self.dir, "late")
        port = kit.free_port()
        late = kit.Broker(store, upload=f"tcp://127.0.0.1:{port}")
        retried = threading.Event()
        up = gridsync.Uploader(f"tcp://127.0.0.1:{port}", "dev-py", timeout=0.3, retries=200,
                               on_retry=lambda attempt, why: retried.set())
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("ack", up.upload(
            kit.households(3), upload_id="late-1")))
        t.start()
        try:
            self.assertTrue(retried.wait(kit.PATIENCE_S))
            late.start()
            t.join(kit.PATIENCE_S)
            self.assertFalse(t.is_alive())
            self.assertEqual([r.seq for r in result["ack"].results], [1, 2, 3])
        finally:
            up.close()
            late.stop()

    def test_timeout_says_why(self):
        """No broker at all: TimeoutError after the retries, saying that
        nothing could be connected."""
        port = kit.free_port()
        with gridsync.Client(f"tcp://127.0.0.1:{port}", timeout=0.2, retries=1) as c:
            with self.assertRaises(gridsync.TimeoutError) as cm:
                c.ping()
        self.assertIn("could not connect", str(cm.exception))

    def test_incident_categories(self):
        """incident_categories(): the built-in table, in code order."""
        t = self.client.incident_categories()
        self.assertFalse(t.configured)
        codes = [c.code for c in t.categories]
        self.assertEqual(codes, sorted(codes))
        self.assertIn("02", codes)
        c = t.categories[codes.index("02")]
        self.assertEqual(c.name, "安全隐患")
        self.assertEqual(list(c.close_hours), [168, 72, 24, 4])
        self.assertFalse(c.retired)

    def test_server_errors(self):
        """Errors that resending cannot cure raise ServerError at once, with
        the broker's reason."""
        with gridsync.Uploader(self.broker.upload, "dev py!") as up:
            with self.assertRaises(gridsync.ServerError) as cm:
                up.upload(kit.households(1))
        self.assertEqual(cm.exception.reason, pb.REASON_BAD_REQUEST)
        self.assertEqual(cm.exception.reason_name, "REASON_BAD_REQUEST")
        with self.assertRaises(gridsync.ServerError) as cm:
            self.client.sync(["4403051"])
        self.assertEqual(cm.exception.reason, pb.REASON_BAD_REQUEST)
        self.assertEqual(self.client.stats.resends, 0)

    def test_pull_one_grid(self):
        """pull() of one grid: exactly that grid's records at their versions
        (snapshot pages, then deltas), and a later pull given the earlier
        result fetches only the changes, moves included."""
        grid = kit.GRIDS[0]
        with gridsync.Uploader(self.broker.upload, "dev-py") as up:
            up.upload(kit.households(40))
            got = gridsync.pull(self.client, grid, limit=3)     # many pages
            want = {f"H-{i:06d}" for i in range(40) if i % len(kit.GRIDS) == 0}
            self.assertEqual({k for (_, k) in got.records}, want)
            self.assertTrue(all(h.version == 1 and h.grid_code == grid
                                for h in got.records.values()))
            self.assertEqual(got.next_seq, 40)
            self.assertNotEqual(got.store_epoch, 0)
            # an edit of one record, a record moved out of the grid, one more
            edit = kit.household(grid, "H-000000", 10000, base_version=1, name="李四")
            moved = kit.household(kit.GRIDS[1], "H-000004", 10004, base_version=1)
            ack = up.upload([edit, moved, kit.household(grid, "H-000900", 10900)])
            self.assertEqual([r.status for r in ack.results], [pb.RESULT_STATUS_ACCEPTED] * 3)
        later = gridsync.pull(self.client, grid, previous=got)
        keys = {k for (_, k) in later.records}
        self.assertEqual(keys, (want - {"H-000004"}) | {"H-000900"})
        head = later.records[(pb.RECORD_KIND_HOUSEHOLD, "H-000000")]
        self.assertEqual(head.version, 2)
        self.assertEqual(head.record.household.members[0].name, "李四")
        self.assertEqual(gridsync.pull(self.client, grid).records.keys(), later.records.keys())

    def test_bundle(self):
        """An enrolment bundle as gridctl writes it: keys, endpoints, device;
        one with a damaged key is refused with a message."""
        pub, sec = zmq.curve_keypair()
        spub, _ = zmq.curve_keypair()
        path = os.path.join(self.dir, "b.bundle")
        with open(path, "w") as f:
            f.write("# gridsync provisioning bundle for dev-9.\n"
                    "device_id = dev-9\nupload_endpoint = tcp://127.0.0.1:7510\n"
                    "feed_endpoint = \n"
                    f"server_public = {spub.decode()}\npublic_key = {pub.decode()}\n"
                    f"secret_key = {sec.decode()}\n")
        b = gridsync.load_bundle(path)
        self.assertEqual((b.device_id, b.upload_endpoint, b.feed_endpoint),
                         ("dev-9", "tcp://127.0.0.1:7510", ""))
        self.assertEqual(b.keys.public_key, pub.decode())
        self.assertEqual(b.keys.secret_key, sec.decode())
        with open(path, "a") as f:
            f.write("secret_key = short\n")
        with self.assertRaises(gridsync.GridsyncError) as cm:
            gridsync.load_bundle(path)
        self.assertIn("secret_key", str(cm.exception))
        with self.assertRaises(gridsync.GridsyncError):
            gridsync.load_bundle(os.path.join(self.dir, "absent"))


if __name__ == "__main__":
    unittest.main()
