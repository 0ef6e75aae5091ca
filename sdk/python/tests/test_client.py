"""Unit tests of the Python SDK against a fake server at the HTTP boundary
(fakeserver.py says why). The behaviour shared with the other SDKs is held
against a real server by sdk/conformance."""

import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

import promptvault  # noqa: E402
from promptvault import _client  # noqa: E402
from fakeserver import FakeServer  # noqa: E402

# Only keeps a broken build from hanging; nothing here measures time.
LIMIT = 30.0


def wait_for(what: str, cond: Callable[[], bool]) -> None:
    end = time.monotonic() + LIMIT
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what}")


def free_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


class ClientTest(unittest.TestCase):
    def setUp(self) -> None:
        self.srv = FakeServer()
        self.addCleanup(self.srv.stop)
        self.srv.set("greet", "v1")
        self.srv.set("team/bye", "v1")

    def client(self, **kw) -> promptvault.Client:
        kw.setdefault("backoff", (0.01, 0.1))
        c = promptvault.Client(self.srv.url, "pv_live_" + "x" * 32, **kw)
        self.addCleanup(c.close)
        return c

    def test_cached_get_makes_no_request(self) -> None:
        c = self.client()
        self.assertEqual(c.get("greet").version, "v1")
        wait_for("stream", lambda: c.connected)
        n = len(self.srv.prompt_requests)
        for _ in range(100):
            self.assertEqual(c.get("greet").version, "v1")
        self.assertEqual(len(self.srv.prompt_requests), n)

    def test_event_refetches_with_if_none_match(self) -> None:
        c = self.client()
        etag = c.get("greet").etag
        self.assertTrue(etag)
        wait_for("stream", lambda: c.connected)
        wait_for("first-connection revalidation", lambda: not c._cache["greet"].inflight)
        self.srv.set("greet", "v2")
        self.srv.pointer("greet", 5)
        wait_for("v2", lambda: c.get("greet").version == "v2")
        self.assertIn(("greet", etag), self.srv.prompt_requests)
        # An event for an unchanged prompt costs a 304 and keeps the copy.
        n = len(self.srv.prompt_requests)
        self.srv.pointer("greet", 6)
        wait_for("revalidation", lambda: len(self.srv.prompt_requests) > n and not c._cache["greet"].inflight)
        self.assertEqual(c.get("greet").version, "v2")

    def test_reconnect_resumes_with_last_event_id(self) -> None:
        c = self.client()
        c.get("greet")
        wait_for("stream", lambda: c.connected)
        self.srv.pointer("greet", 41)
        self.srv.pointer("team/bye", 42)  # not cached: nothing to refetch
        self.srv.push(b"CLOSE")
        wait_for("reconnect", lambda: self.srv.streams >= 2)
        self.assertEqual(self.srv.last_event_ids[:2], [None, "42"])

    def test_reset_revalidates_every_cached_prompt(self) -> None:
        c = self.client()
        c.get("greet")
        c.get("team/bye")
        wait_for("stream", lambda: c.connected)
        self.srv.set("greet", "v2")
        self.srv.set("team/bye", "v3")
        self.srv.push(b"event: reset\ndata: {}\n\n")
        wait_for("both refetched", lambda: c.get("greet").version == "v2" and c.get("team/bye").version == "v3")

    def test_hostile_stream_is_survived(self) -> None:
        c = self.client()
        c.get("greet")
        wait_for("stream", lambda: c.connected)
        for frame in [
            b"event: pointer\ndata: not json\n\n",
            b"event: pointer\ndata: [1, 2]\n\n",
            b'event: pointer\ndata: {"key": 5}\n\n',
            b"event: pointer\ndata: \xff\xfe\n\n",
            b"id\nevent\ndata\n\n",
            b"event: unknown-kind\ndata: {}\n\n",
        ]:
            self.srv.push(frame)
        # A line longer than 1 MiB ends the connection; the client redials.
        self.srv.push(b"data: " + b"x" * (1 << 20) + b"\n\n")
        wait_for("redial", lambda: self.srv.streams >= 2)
        self.assertEqual(c.get("greet").version, "v1")
        self.srv.set("greet", "v2")
        self.srv.pointer("greet", 9)
        wait_for("v2 after the redial", lambda: c.get("greet").version == "v2")

    def test_server_errors(self) -> None:
        c = self.client(events=False)
        self.srv.set_raw("bad", 502, b"<html>bad gateway</html>")
        with self.assertRaises(promptvault.PromptVaultError) as cm:
            c.get("bad")
        self.assertEqual((cm.exception.status, cm.exception.code), (502, "http_502"))
        self.assertIn("bad gateway", cm.exception.message)
        self.srv.set_raw("notjson", 200, b"{")
        with self.assertRaises(promptvault.PromptVaultError) as cm:
            c.get("notjson")
        self.assertEqual((cm.exception.status, cm.exception.code), (200, "bad_response"))
        old = _client._MAX_DOC
        _client._MAX_DOC = 100
        self.addCleanup(setattr, _client, "_MAX_DOC", old)
        self.srv.set("big", "v1", "x" * 200)
        with self.assertRaises(promptvault.PromptVaultError) as cm:
            c.get("big")
        self.assertEqual(cm.exception.code, "bad_response")
        with self.assertRaises(promptvault.PromptVaultError) as cm:
            c.get("missing")
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "not_found"))

    def test_bad_input(self) -> None:
        with self.assertRaises(ValueError):
            promptvault.Client("127.0.0.1:8080", "k")
        with self.assertRaises(ValueError):
            promptvault.Client("ftp://host", "k")
        c = self.client(events=False)
        for key in ["", "Greet", "../x", "a//b", "a/", "/a", "a b", "x" * 129, "é"]:
            with self.assertRaises(promptvault.PromptVaultError, msg=key) as cm:
                c.get(key)
            self.assertEqual((cm.exception.status, cm.exception.code), (0, "invalid_key"))
        self.assertEqual(self.srv.prompt_requests, [])
        with self.assertRaises(TypeError):
            c.render("greet", {"when": object()})

    def test_unreachable_server(self) -> None:
        c = promptvault.Client(free_url(), "k", backoff=(0.01, 0.05))
        self.addCleanup(c.close)
        with self.assertRaises(promptvault.PromptVaultError) as cm:
            c.get("greet")
        self.assertEqual((cm.exception.status, cm.exception.code), (0, "unavailable"))

    def test_snapshot_is_atomic_and_serves_a_cold_start(self) -> None:
        d = tempfile.mkdtemp()
        path = os.path.join(d, "prompts.json")
        c = self.client(snapshot_path=path)
        c.get("greet")
        c.get("team/bye")
        c.close()
        self.assertEqual(os.listdir(d), ["prompts.json"])  # no temporary file left
        with open(path) as f:
            sf = json.load(f)
        self.assertEqual(sorted(sf["prompts"]), ["greet", "team/bye"])
        cold = promptvault.Client(free_url(), "k", snapshot_path=path, backoff=(0.01, 0.05))
        self.addCleanup(cold.close)
        p = cold.get("greet")
        self.assertEqual((p.version, p.etag), ("v1", sf["etags"]["greet"]))
        self.assertEqual(p.trace_attributes()["gen_ai.prompt.name"], "greet")

    def test_threads_share_one_client(self) -> None:
        c = self.client()
        c.get("greet")
        wait_for("stream", lambda: c.connected)
        errors = []
        stop = threading.Event()

        def reader() -> None:
            try:
                while not stop.is_set():
                    v = c.get("greet").version
                    assert v.startswith("v"), v
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=reader) for _ in range(8)]
        for t in threads:
            t.start()
        for i in range(2, 40):
            self.srv.set("greet", f"v{i}")
            self.srv.pointer("greet", i)
        wait_for("last version", lambda: c.get("greet").version == "v39")
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

    @unittest.skipUnless(hasattr(os, "fork"), "no fork on this platform")
    def test_fork_restarts_the_event_thread_in_the_child(self) -> None:
        c = self.client()
        c.get("greet")
        wait_for("stream", lambda: c.connected)
        streams = self.srv.streams
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: report through the exit status only
            code = 1
            try:
                os.close(r)
                assert c.get("greet").version == "v1"  # the inherited cache
                wait_for("child stream", lambda: c.connected)
                os.write(w, b"c")
                wait_for("child sees v2", lambda: c.get("greet").version == "v2")
                code = 0
            except BaseException as e:
                sys.stderr.write(f"child: {e!r}\n")
            os._exit(code)
        os.close(w)
        try:
            self.assertEqual(os.read(r, 1), b"c", "child never connected its own stream")
            self.assertGreater(self.srv.streams, streams)
            self.srv.set("greet", "v2")
            self.srv.pointer("greet", 3)
            end = time.monotonic() + LIMIT
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > end:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    self.fail("child did not finish")
                time.sleep(0.01)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        finally:
            os.close(r)
        # The parent's own stream was not disturbed by the child.
        wait_for("parent sees v2", lambda: c.get("greet").version == "v2")
        self.srv.set("greet", "v4")
        self.srv.pointer("greet", 4)
        wait_for("parent sees v4", lambda: c.get("greet").version == "v4")
        self.assertTrue(c.connected)

    def test_close_stops_the_event_thread(self) -> None:
        c = self.client()
        wait_for("stream", lambda: c.connected)
        t = c._thread
        assert t is not None
        c.close()
        self.assertFalse(t.is_alive())
        with promptvault.Client(self.srv.url, "k", events=False) as c2:
            self.assertEqual(c2.get("greet").version, "v1")


if __name__ == "__main__":
    unittest.main()
