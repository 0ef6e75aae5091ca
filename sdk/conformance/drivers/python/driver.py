"""The Python SDK's conformance driver: one JSON request per line on stdin
(open, get, render, connected, close), one JSON answer per line on stdout,
as sdk/conformance's harness speaks to every SDK's driver."""

import dataclasses
import json
import sys
import threading
import time
from typing import Any, Dict

import promptvault


def do(clients: Dict[str, promptvault.Client], req: Dict[str, Any]) -> Any:
    op = req.get("op")
    if op == "open":
        kw: Dict[str, Any] = {}
        if req.get("events") is False:
            kw["events"] = False
        if req.get("revalidate_ms"):
            kw["revalidate_every"] = req["revalidate_ms"] / 1000
        if req.get("backoff_ms"):
            lo, hi = req["backoff_ms"]
            kw["backoff"] = (lo / 1000, hi / 1000)
        clients[req["client"]] = promptvault.Client(
            req["base_url"], req["api_key"], snapshot_path=req.get("snapshot_path") or None, **kw
        )
        return {}
    c = clients[req["client"]]
    if op == "get":
        p = c.get(req["key"])
        return {
            "key": p.key,
            "env": p.env,
            "version": p.version,
            "number": p.number,
            "commit": p.commit,
            "sha256": p.sha256,
            "template": p.prompt.template,
            "attributes": p.trace_attributes(),
        }
    if op == "render":
        return dataclasses.asdict(c.render(req["key"], req.get("variables") or {}))
    if op == "connected":
        return {"connected": c.connected}
    if op == "bench_get":
        # n cached reads, and n reads of a lock-guarded dict (the least a
        # thread-safe cache can cost) as the baseline.
        key, n = req["key"], req["n"]
        c.get(key)
        start = time.perf_counter_ns()
        for _ in range(n):
            c.get(key)
        sdk = time.perf_counter_ns() - start
        lock, d = threading.Lock(), {key: object()}
        start = time.perf_counter_ns()
        for _ in range(n):
            with lock:
                d.get(key)
        base = time.perf_counter_ns() - start
        return {"sdk_ns": sdk / n, "baseline_ns": base / n}
    if op == "wait_version":
        # What an application sees: get, until the new version is served.
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                if c.get(req["key"]).version == req["version"]:
                    return {}
            except promptvault.PromptVaultError:
                pass
            time.sleep(0.0001)
        raise ValueError(f"{req['key']} never served {req['version']}")
    if op == "close":
        clients.pop(req["client"]).close()
        return {}
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    clients: Dict[str, promptvault.Client] = {}
    for line in sys.stdin:
        try:
            ans: Dict[str, Any] = {"ok": True, "result": do(clients, json.loads(line))}
        except promptvault.PromptVaultError as e:
            ans = {
                "ok": False,
                "error": {
                    "status": e.status,
                    "code": e.code,
                    "message": e.message,
                    "errors": [dataclasses.asdict(v) for v in e.errors],
                },
            }
        except Exception as e:  # a driver bug, reported to the harness
            ans = {"ok": False, "error": {"code": "driver", "message": f"{type(e).__name__}: {e}"}}
        sys.stdout.write(json.dumps(ans) + "\n")
        sys.stdout.flush()
    for c in clients.values():
        c.close()


if __name__ == "__main__":
    main()
