"""Flaky stand-ins on 127.0.0.1 for a customer's webhook endpoint and Slack's Web API (bench/chaos.py).

Each request gets, at random (seeded): a success, a 500, a timeout (the answer comes after the client
gave up), a 300 MB body, a 200 whose body is not JSON, or a 503 with ``Retry-After`` far ahead. Every
successful receipt is recorded under its delivery key (the webhook's ``webhook-id``; for Slack, the
thread the reply went to), so duplicates at the receiver can be counted.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BEHAVIOURS = (
    ("ok", 0.60),
    ("error", 0.15),
    ("timeout", 0.06),
    ("huge", 0.03),
    ("not-json", 0.10),
    ("retry-after-far", 0.06),
)
HUGE_BYTES = 300 << 20


@dataclass
class Receipts:
    ok: Counter[str] = field(default_factory=Counter)  # delivery key -> successful receipts
    behaviours: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def duplicates(self) -> int:
        with self.lock:
            return sum(n - 1 for n in self.ok.values() if n > 1)


class FlakyReceiver:
    """``kind`` webhook: key = webhook-id header; slack: key = the thread_ts of chat.postMessage."""

    def __init__(self, kind: str, *, seed: int, flaky: bool = True, timeout_s: float = 2.0) -> None:
        self.kind, self.flaky, self.timeout_s = kind, flaky, timeout_s
        self.receipts = Receipts()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def calm(self) -> None:
        """From now on every request succeeds (the drain phase)."""
        self.flaky = False

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _pick(self) -> str:
        if not self.flaky:
            return "ok"
        with self._rng_lock:
            roll = self._rng.random()
        for name, share in BEHAVIOURS:
            roll -= share
            if roll < 0:
                return name
        return "ok"

    def _key(self, headers: Any, body: bytes, path: str) -> str | None:
        if self.kind == "webhook":
            return str(headers.get("webhook-id"))
        if path.endswith("chat.postMessage"):
            return str(json.loads(body).get("thread_ts"))
        return None  # reactions are not counted

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                behaviour = receiver._pick()
                with receiver.receipts.lock:
                    receiver.receipts.behaviours[behaviour] += 1
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._answer(behaviour, body)

            do_PUT = do_POST  # noqa: N815

            def _answer(self, behaviour: str, body: bytes) -> None:
                if behaviour == "timeout":
                    time.sleep(receiver.timeout_s + 1)
                    return self._send(500, b"{}")
                if behaviour == "huge":
                    return self._send(500, b"", stream=HUGE_BYTES)
                if behaviour == "error":
                    return self._send(500, b'{"error": "oops"}')
                if behaviour == "retry-after-far":
                    return self._send(503, b"{}", headers={"Retry-After": "999999999999"})
                if behaviour == "not-json" and receiver.kind == "slack":  # the client cannot tell if it worked
                    return self._send(200, b"<html>upstream hiccup</html>")
                # (a webhook does not read the body: a 200 that is not JSON is a success)
                key = receiver._key(self.headers, body, self.path)
                if key is not None:
                    with receiver.receipts.lock:
                        receiver.receipts.ok[key] += 1
                return self._send(200, b'{"ok": true}')

            def _send(
                self, status: int, payload: bytes, *, stream: int = 0, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(stream or len(payload)))
                self.end_headers()
                if stream:
                    chunk = b"x" * (1 << 20)
                    for _ in range(stream >> 20):
                        self.wfile.write(chunk)
                else:
                    self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
