"""A stand-in for promptvault serve at the HTTP boundary, for what a real
server cannot be made to do on demand: hostile event streams, a reset event,
oversized or non-JSON answers. It speaks SPEC §3's shapes. Everything a real
server can do is tested against one in sdk/conformance."""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple


def doc(key: str, version: str, template: str = "Hi") -> Dict[str, Any]:
    return {
        "key": key,
        "env": "live",
        "version": version,
        "number": int(version[1:]) if version[1:].isdigit() else None,
        "commit": hashlib.sha1(f"{key}@{version}".encode()).hexdigest(),
        "sha256": hashlib.sha256(f"{key}@{version}".encode()).hexdigest(),
        "message": "m",
        "author": "a",
        "created_at": "2026-01-01T00:00:00Z",
        "prompt": {"template": template},
    }


class FakeServer:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.docs: Dict[str, Tuple[bytes, str, int]] = {}  # key -> (body, etag, status)
        self.frames: List[bytes] = []  # event stream bytes, in order
        self.streams = 0  # event stream connections so far
        self.last_event_ids: List[Optional[str]] = []
        self.prompt_requests: List[Tuple[str, Optional[str]]] = []  # (key, If-None-Match)
        self.stopping = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/v1/events":
                    fake._events(self)
                elif self.path.startswith("/v1/prompts/"):
                    fake._prompt(self, self.path[len("/v1/prompts/"):])
                else:
                    self.send_error(404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def set(self, key: str, version: str, template: str = "Hi") -> None:
        with self.cond:
            body = json.dumps(doc(key, version, template)).encode()
            self.docs[key] = (body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"', 200)

    def set_raw(self, key: str, status: int, body: bytes) -> None:
        with self.cond:
            self.docs[key] = (body, "", status)

    def push(self, raw: bytes) -> None:
        with self.cond:
            self.frames.append(raw)
            self.cond.notify_all()

    def pointer(self, key: str, seq: int) -> None:
        self.push(f'id: {seq}\nevent: pointer\ndata: {{"key": "{key}", "env": "live"}}\n\n'.encode())

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _prompt(self, h: BaseHTTPRequestHandler, key: str) -> None:
        inm = h.headers.get("If-None-Match")
        with self.cond:
            self.prompt_requests.append((key, inm))
            got = self.docs.get(key)
        if got is None:
            body, etag, status = b'{"error": {"code": "not_found", "message": "no such prompt"}}', "", 404
        else:
            body, etag, status = got
        if status == 200 and inm and inm == etag:
            h.send_response(304)
            h.send_header("ETag", etag)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(status)
        if etag:
            h.send_header("ETag", etag)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _events(self, h: BaseHTTPRequestHandler) -> None:
        with self.cond:
            self.streams += 1
            self.last_event_ids.append(h.headers.get("Last-Event-ID"))
            sent = len(self.frames)  # a new connection gets only what comes next
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b": connected\n\n")
        h.wfile.flush()
        while True:
            with self.cond:
                while sent >= len(self.frames) and not self.stopping:
                    self.cond.wait()
                if self.stopping:
                    return
                frame = self.frames[sent]
                sent += 1
            if frame == b"CLOSE":
                return  # ends this connection
            try:
                h.wfile.write(frame)
                h.wfile.flush()
            except OSError:
                return
