"""Real HTTP servers on 127.0.0.1 standing in for Slack's Web API, Jira, Zendesk and customers' endpoints.

Each records every request and answers from a script (per path: a list of responses used in order, the
last one repeating): a status, headers, a JSON body, or a delay longer than the client's timeout.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    raw: bytes | None = None  # sent as it is instead of ``body`` as JSON
    stream_bytes: int = 0  # instead: this many bytes of filler, written 1 MiB at a time (never held whole)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Platform:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._script: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._script[path] = list(replies)

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int = 1, *, timeout_s: float = 60) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.requests_to(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: {len(self.requests_to(path))} of {count} requests after {timeout_s}s")
            time.sleep(0.05)
        return self.requests_to(path)

    def _next_reply(self, path: str) -> Reply:
        with self._lock:
            replies = self._script.get(path) or [Reply()]
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                with platform._lock:
                    platform.received.append(Received(self.command, path, dict(self.headers), body, time.monotonic()))
                reply = platform._next_reply(path)
                time.sleep(reply.delay_s)
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    for key, value in {"Content-Type": "application/json", **reply.headers}.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(reply.stream_bytes or len(payload)))
                    self.end_headers()
                    if reply.stream_bytes:
                        self._stream(reply.stream_bytes)
                    else:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout we scripted, or a body it would not read)

            def _stream(self, size: int) -> None:
                chunk = b"x" * (1 << 20)
                while size > 0:
                    self.wfile.write(chunk[:size])
                    size -= len(chunk)

            do_GET = do_POST = do_PUT = _serve  # noqa: N815 - http.server's naming

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def platform() -> Iterator[Platform]:
    p = Platform()
    p.start()
    try:
        yield p
    finally:
        p.stop()
