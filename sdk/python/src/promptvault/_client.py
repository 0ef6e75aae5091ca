"""The client: a cache fed by the server's event stream (SPEC §9)."""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import socket
import ssl
import tempfile
import threading
import time
import weakref
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Mapping, Optional, Tuple
from urllib.parse import quote, urlsplit

from ._types import Prompt, PromptVaultError, Rendered, VariableError, check_key

__all__ = ["Client"]

_log = logging.getLogger("promptvault")

_MAX_DOC = 16 << 20  # a prompt document
_MAX_RENDER = 64 << 20  # a render answer
_MAX_LINE = 1 << 20  # one line of the event stream
# The server sends a comment every 15 s; a stream silent for three of them
# is a dead connection (a peer that vanished without a FIN) and is redialled.
_STREAM_IDLE = 45.0


class _Entry:
    __slots__ = ("prompt", "raw", "stale", "checked", "inflight")

    def __init__(self, prompt: Prompt, raw: Dict[str, Any], stale: bool = False, checked: float = 0.0) -> None:
        self.prompt = prompt
        self.raw = raw  # the server's document, for the snapshot file
        self.stale = stale  # an event (or a reconnect) says it may have changed
        self.checked = checked  # time.monotonic() of the last revalidation
        self.inflight = False  # a background refetch is running


class _NotModified(Exception):
    pass


# Every open client, so a forked child can restart its event thread: threads
# do not survive fork(), and locks held by them at that moment would stay
# held forever in the child.
_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for c in list(_clients):
        c._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Client:
    """Reads prompts from one server with one API key.

    ``get`` answers from memory once a key has been read; a background
    thread follows ``GET /v1/events`` and refetches a prompt (with
    ``If-None-Match``) the moment the server says its pointer moved. Safe to
    share between threads; after ``os.fork()`` (gunicorn, Celery) the child
    keeps the cache and starts its own event thread. ``close()`` (or leaving
    a ``with`` block) stops the thread.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        snapshot_path: Optional[str] = None,
        *,
        events: bool = True,
        timeout: float = 10.0,
        backoff: Tuple[float, float] = (0.1, 30.0),
        revalidate_every: float = 1.0,
        on_update: Optional[Callable[[Prompt], None]] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(
                f"promptvault: base URL {base_url!r}: want scheme and host, such as http://127.0.0.1:8080"
            )
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port or (443 if self._https else 80)
        self._prefix = u.path.rstrip("/")
        self._ssl = ssl_context
        self._api_key = api_key
        self._snap_path = snapshot_path
        self._events = events
        self._timeout = timeout
        self._backoff = backoff
        self._revalidate = revalidate_every
        self._on_update = on_update

        self._lock = threading.Lock()  # guards _cache, _last_id, _connected, _stream_sock
        self._snap_lock = threading.Lock()  # serialises snapshot writes
        self._cache: Dict[str, _Entry] = {}
        self._last_id = ""  # last event id seen; resumes the stream
        self._connected = False
        self._stream_sock: Optional[socket.socket] = None
        self._closed = threading.Event()
        self._thread: Optional[threading.Thread] = None

        if snapshot_path:
            try:
                self._load_snapshot()
            except FileNotFoundError:
                pass
            except Exception as e:  # a corrupt file must not stop the application
                _log.warning("promptvault: snapshot file %s unreadable; starting empty: %s", snapshot_path, e)
        _clients.add(self)
        self._start_stream()

    # -- public API -------------------------------------------------------

    def get(self, key: str) -> Prompt:
        """Prompt ``key`` as this client's API key reads it. A cached copy is
        returned at once (never waiting on the network); it is refetched in
        the background when an event says it changed, or, while the stream
        is down, at most every ``revalidate_every`` seconds. Without a cached
        copy ``get`` asks the server."""
        # A cached key was checked when it was first fetched; the check (a
        # regular expression) would otherwise be most of a cached get's cost.
        with self._lock:
            e = self._cache.get(key)
            if e is not None:
                need = e.stale or (not self._connected and time.monotonic() - e.checked >= self._revalidate)
                if need and not e.inflight:
                    self._refresh_in_background(key, e)
                return e.prompt
        check_key(key)
        p, raw = self._fetch(key, "")
        self._store(key, p, raw)
        return p

    def refresh(self, key: str) -> Prompt:
        """Refetch ``key`` now (``If-None-Match``). On failure the cached copy
        is kept and the error raised; a 404 drops it."""
        check_key(key)
        with self._lock:
            e = self._cache.get(key)
            etag = e.prompt.etag if e is not None else ""
        try:
            p, raw = self._fetch(key, etag)
        except _NotModified:
            with self._lock:
                e = self._cache.get(key)
                if e is not None:
                    e.stale, e.checked = False, time.monotonic()
                    return e.prompt
            return self._refetch_dropped(key)
        except PromptVaultError as err:
            if err.status == 404:
                with self._lock:
                    dropped = self._cache.pop(key, None) is not None
                if dropped:
                    self._save_snapshot()
            raise
        self._store(key, p, raw)
        return p

    def render(self, key: str, variables: Optional[Mapping[str, Any]] = None) -> Rendered:
        """Render prompt ``key`` on the server with ``variables``. Rendering
        needs the server: its sandbox and limits decide what a template may
        do. A 422 ``validation_failed`` lists each variable problem in
        ``PromptVaultError.errors``."""
        check_key(key)
        try:
            body = json.dumps({"variables": dict(variables or {})}).encode()
        except (TypeError, ValueError) as e:
            raise TypeError(f"promptvault: render {key}: variables are not JSON: {e}") from None
        status, _, data = self._request(
            "POST", "/v1/prompts/" + _escape(key) + "/render", body, {"Content-Type": "application/json"}, _MAX_RENDER
        )
        if status != 200:
            raise _decode_error(status, data)
        try:
            return Rendered.from_json(json.loads(data))
        except ValueError as e:
            raise PromptVaultError(status, "bad_response", f"render {key}: {e}") from None

    @property
    def connected(self) -> bool:
        """Whether the event stream is up."""
        return self._connected

    def close(self) -> None:
        """Stop the event stream and background refreshes."""
        self._closed.set()
        with self._lock:
            sock = self._stream_sock
        _shutdown(sock)
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(self._timeout + 1)
        _clients.discard(self)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- HTTP ---------------------------------------------------------------

    def _conn(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl or ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _request(
        self, method: str, path: str, body: Optional[bytes], headers: Dict[str, str], limit: int
    ) -> Tuple[int, http.client.HTTPResponse, bytes]:
        conn = self._conn(self._timeout)
        try:
            conn.request(method, self._prefix + path, body=body, headers={"Authorization": "Bearer " + self._api_key, **headers})
            res = conn.getresponse()
            data = res.read(limit + 1)
        except (OSError, http.client.HTTPException) as e:
            raise PromptVaultError(0, "unavailable", f"{method} {path}: {e or type(e).__name__}") from e
        finally:
            conn.close()
        if len(data) > limit:
            raise PromptVaultError(res.status, "bad_response", f"{method} {path}: answer larger than {limit} bytes")
        return res.status, res, data

    def _fetch(self, key: str, etag: str) -> Tuple[Prompt, Dict[str, Any]]:
        headers = {"If-None-Match": etag} if etag else {}
        status, res, data = self._request("GET", "/v1/prompts/" + _escape(key), None, headers, _MAX_DOC)
        if status == 304:
            raise _NotModified()
        if status != 200:
            raise _decode_error(status, data)
        try:
            raw = json.loads(data)
            return Prompt.from_json(raw, res.getheader("ETag") or ""), raw
        except ValueError as e:
            raise PromptVaultError(status, "bad_response", f"get {key}: not a prompt document: {e}") from None

    def _refetch_dropped(self, key: str) -> Prompt:
        # A 304 for a copy dropped meanwhile (a 404 raced us): ask again.
        p, raw = self._fetch(key, "")
        self._store(key, p, raw)
        return p

    # -- cache --------------------------------------------------------------

    def _store(self, key: str, p: Prompt, raw: Dict[str, Any]) -> None:
        with self._lock:
            old = self._cache.get(key)
            changed = old is None or old.prompt.etag != p.etag
            self._cache[key] = _Entry(p, raw, checked=time.monotonic())
        if changed:
            if self._on_update is not None:
                try:
                    self._on_update(p)
                except Exception:
                    _log.exception("promptvault: on_update raised")
            self._save_snapshot()

    def _refresh_in_background(self, key: str, e: _Entry) -> None:
        """Start a refetch of ``key``. Needs ``self._lock``."""
        if self._closed.is_set():
            return
        e.inflight = True
        threading.Thread(target=self._refresh_worker, args=(key,), name="promptvault-refresh", daemon=True).start()

    def _refresh_worker(self, key: str) -> None:
        err: Optional[Exception] = None
        try:
            self.refresh(key)
        except Exception as e:
            err = e
        with self._lock:
            e2 = self._cache.get(key)
            if e2 is not None:
                e2.inflight = False
                if err is not None:
                    # The last good copy stays; try again after the interval.
                    e2.checked = time.monotonic()
        if err is not None and not self._closed.is_set():
            _log.debug("promptvault: refresh %s failed; serving the last good copy: %s", key, err)

    def _mark_all_stale(self) -> None:
        with self._lock:
            for key, e in self._cache.items():
                e.stale = True
                if not e.inflight:
                    self._refresh_in_background(key, e)

    # -- event stream -------------------------------------------------------

    def _start_stream(self) -> None:
        if not self._events or self._closed.is_set():
            return
        self._thread = threading.Thread(target=self._follow, name="promptvault-events", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        """Keep the event stream open until close, reconnecting with
        Last-Event-ID after a backoff with full jitter (so a fleet of clients
        does not reconnect at once)."""
        lo, hi = self._backoff
        delay = lo
        while not self._closed.is_set():
            got_events = False
            try:
                got_events = self._stream_once()
            except Exception as e:
                _log.debug("promptvault: event stream ended: %s", e)
            with self._lock:
                self._connected = False
                self._stream_sock = None
            if got_events:
                delay = lo
            if self._closed.wait(delay / 2 + random.uniform(0, delay / 2)):
                return
            delay = min(2 * delay, hi)

    def _stream_once(self) -> bool:
        conn = self._conn(self._timeout)
        with self._lock:
            resume = self._last_id
        try:
            conn.connect()
            # Kept for close(): http.client lets go of the socket once the
            # response owns it (Connection: close), yet a read blocked on it
            # must still be woken.
            sock = conn.sock
            with self._lock:
                if self._closed.is_set():
                    return False
                self._stream_sock = sock
            headers = {"Authorization": "Bearer " + self._api_key, "Accept": "text/event-stream"}
            if resume:
                headers["Last-Event-ID"] = resume
            conn.request("GET", self._prefix + "/v1/events", headers=headers)
            res = conn.getresponse()
            if res.status != 200:
                raise _decode_error(res.status, res.read(64 << 10))
            if sock is not None:
                sock.settimeout(_STREAM_IDLE)
            with self._lock:
                self._connected = True
            if not resume:
                # Without a resume point, changes between our fetches and this
                # connection are unknown: revalidate everything once.
                self._mark_all_stale()
            self._read_events(res)
            return True
        finally:
            conn.close()

    def _read_events(self, res: http.client.HTTPResponse) -> None:
        ev_id, event, data = "", "", []  # type: str, str, list
        while not self._closed.is_set():
            line_b = res.readline(_MAX_LINE + 1)
            if not line_b:
                return
            if len(line_b) > _MAX_LINE:
                raise ValueError("event stream line longer than 1 MiB")
            line = line_b.decode("utf-8", "replace").rstrip("\r\n")
            if line == "":
                if event or data:
                    self._dispatch(event, "\n".join(data))
                if ev_id:
                    with self._lock:
                        self._last_id = ev_id
                ev_id, event, data = "", "", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "id":
                ev_id = value
            elif name == "event":
                event = value
            elif name == "data":
                data.append(value)

    def _dispatch(self, event: str, data: str) -> None:
        if event == "pointer":
            try:
                key = json.loads(data).get("key")
            except (ValueError, AttributeError):
                return
            if not isinstance(key, str):
                return
            with self._lock:
                e = self._cache.get(key)
                if e is not None:
                    e.stale = True
                    if not e.inflight:
                        self._refresh_in_background(key, e)
        elif event == "reset":
            self._mark_all_stale()
        elif event == "error":
            _log.info("promptvault: server closed the event stream: %s", data)

    # -- snapshot file -------------------------------------------------------

    def _load_snapshot(self) -> None:
        assert self._snap_path
        with open(self._snap_path, "rb") as f:
            sf = json.load(f)
        if not isinstance(sf, dict) or not isinstance(sf.get("prompts"), dict):
            raise ValueError("not a snapshot file")
        etags = sf.get("etags") if isinstance(sf.get("etags"), dict) else {}
        with self._lock:
            for key, raw in sf["prompts"].items():
                try:
                    check_key(key)  # only valid keys enter the cache: get trusts cached keys
                    p = Prompt.from_json(raw, str(etags.get(key) or ""))
                    if p.key != key:
                        continue
                except (ValueError, PromptVaultError):
                    continue
                # Stale: served at once, revalidated on first use.
                self._cache[key] = _Entry(p, raw, stale=True)

    def _save_snapshot(self) -> None:
        """Write the cache to the snapshot file atomically: a temporary file
        in the same directory, fsynced, then renamed over the old one, so a
        crash leaves the old or the new file, never half of one. The format
        is the Go and TypeScript SDKs' too."""
        if not self._snap_path:
            return
        with self._snap_lock:
            with self._lock:
                sf = {
                    "saved_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                    "prompts": {k: e.raw for k, e in self._cache.items()},
                    "etags": {k: e.prompt.etag for k, e in self._cache.items()},
                }
            try:
                _write_atomic(self._snap_path, json.dumps(sf).encode())
            except OSError as e:
                _log.warning("promptvault: write snapshot file %s: %s", self._snap_path, e)

    # -- fork ----------------------------------------------------------------

    def _after_fork(self) -> None:
        # Runs in the child right after fork(): only the forking thread
        # survived. Locks another thread held are unusable, the parent's
        # stream socket is shared with the parent (shutting it down here
        # would cut the parent's stream, so it is left to the parent), and
        # refreshes that were in flight will never finish.
        self._lock = threading.Lock()
        self._snap_lock = threading.Lock()
        self._stream_sock = None
        self._connected = False
        for e in self._cache.values():
            if e.inflight:
                e.inflight, e.stale = False, True
        if self._closed.is_set():
            return
        self._closed = threading.Event()
        # Resumes from the parent's last event id: nothing is missed.
        self._start_stream()


def _escape(key: str) -> str:
    return "/".join(quote(seg, safe="") for seg in key.split("/"))


def _decode_error(status: int, body: bytes) -> PromptVaultError:
    try:
        e = json.loads(body)["error"]
        code, message = e["code"], e.get("message", "")
        if not isinstance(code, str) or not code:
            raise ValueError
        errs = [
            VariableError(str(v.get("path", "")), str(v.get("message", "")))
            for v in (e.get("errors") or [])
            if isinstance(v, dict)
        ]
        return PromptVaultError(status, code, str(message), errs)
    except (ValueError, KeyError, TypeError, AttributeError):
        text = body[:512].decode("utf-8", "replace").strip()
        return PromptVaultError(status, f"http_{status}", text)


def _shutdown(sock: Optional[socket.socket]) -> None:
    # shutdown() wakes a thread blocked reading the socket; close() alone
    # does not.
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _write_atomic(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
