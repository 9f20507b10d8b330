"""A scripted HTTP server for hostile tests: per test, what each path answers.

It stands in for either provider (or a media host) and does exactly what a test tells it,
including what no well-behaved server does: echo the request's credentials into an error
body, drip a body one byte at a time, lie in Content-Length, send ever-new ``Link`` URLs.

    with Scripted() as srv:
        srv.route("GET", r"/v1/users/u-1/recordings", Reply(json=[...], headers={...}))
        srv.route("GET", r"/media/.*", Reply(body=b"RIFF...", drip=1.0))   # 1 byte/s
        srv.route("GET", r"/calls/.*", lambda req: Reply(status=503))       # computed
        ... srv.url ... srv.requests ...

A route's answer is a Reply, a list of Replies served in turn (the last one repeats), or a
function of the Request. Unrouted requests get 404. Every request is recorded, body read.
"""

from __future__ import annotations

import base64
import json as jsonlib
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def auth(self) -> str | None:
        """The ``Authorization`` header, or None."""
        return self.headers.get("authorization")

    @property
    def basic(self) -> tuple[str, str] | None:
        """Decoded Basic credentials, or None."""
        value = self.auth or ""
        if not value.lower().startswith("basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode("utf-8", "replace").partition(":")
        return user, password


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``json`` wins over ``body``; ``length`` overrides Content-Length
    (a lie when it differs from the body); ``drip`` sends the body at that many bytes per
    second; ``echo_auth`` appends the request's Authorization header (and the decoded
    user:password) to the body, as a careless provider's error page does."""

    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None
    drip: float | None = None
    echo_auth: bool = False
    close: bool = False


Answer = Reply | Sequence[Reply] | Callable[[Request], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    script: Scripted


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        size = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(size) if size else b""
        req = Request(
            self.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        reply = self.server.script._answer(req)
        payload = reply.body
        ctype = reply.headers.get("Content-Type")
        if reply.json is not None:
            payload = jsonlib.dumps(reply.json).encode()
            ctype = ctype or "application/json"
        if reply.echo_auth and req.auth:
            extra = f" (you sent Authorization: {req.auth}"
            if req.basic:
                extra += f", that is {req.basic[0]}:{req.basic[1]}"
            payload += (extra + ")").encode()
        self.send_response(reply.status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(reply.length if reply.length is not None else len(payload)))
        for k, v in reply.headers.items():
            if k.lower() not in ("content-type", "content-length"):
                self.send_header(k, v)
        if reply.close:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            if reply.drip:
                for i in range(len(payload)):
                    if self.server.script._stopping.is_set():
                        return
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
                    time.sleep(1.0 / reply.drip)
            else:
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            return
        if reply.close or (reply.length is not None and reply.length != len(payload)):
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _serve


class Scripted:
    """The server. ``with Scripted() as srv:`` binds 127.0.0.1 on a free port."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Answer, list[int]]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[Request] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.script = self
        # A short poll interval: shutdown() waits for it, once per test (0.5 s by default).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, path_regex: str, answer: Answer) -> Scripted:
        """Answer ``method`` requests whose path fully matches ``path_regex``; later routes win."""
        with self._lock:
            self._routes.insert(0, (method.upper(), re.compile(path_regex), answer, [0]))
        return self

    def hits(self, path_regex: str, method: str | None = None) -> list[Request]:
        pattern = re.compile(path_regex)
        with self._lock:
            return [
                r
                for r in self.requests
                if pattern.fullmatch(r.path) and (method is None or r.method == method.upper())
            ]

    def _answer(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
            route = next((r for r in self._routes if r[0] == req.method and r[1].fullmatch(req.path)), None)
            if route is None:
                return Reply(status=404, json={"error": "not scripted"})
            _, _, answer, served = route
            served[0] += 1
            n = served[0]
        if callable(answer):
            return answer(req)
        if isinstance(answer, Reply):
            return answer
        return answer[min(n, len(answer)) - 1]

    def __enter__(self) -> Scripted:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
