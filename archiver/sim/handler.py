"""The simulator's request handler base: JSON and media responses, faults on bodies, Basic auth."""

from __future__ import annotations

import base64
import json
import socket
import struct
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archiver.sim.server import Simulator

HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>The upstream server failed.</p></body></html>"
)


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type, sim: Simulator) -> None:
        super().__init__(addr, handler)
        self.sim = sim
        self.connections = 0  # accepted so far: how well a client keeps its connections alive

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sim._lock:
            self.connections += 1
        super().process_request(request, client_address)


class Handler(BaseHTTPRequestHandler):
    server: SimServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle plus the client's
    # delayed ACK add 40 ms to every small keep-alive response.
    disable_nagle_algorithm = True

    @property
    def sim(self) -> Simulator:
        return self.server.sim

    def parse_request(self) -> bool:
        """Parse the request line and headers, then read and discard the body, whatever the
        method: no route reads one, and a body left unread on a keep-alive connection would
        be parsed as the next request line (plivo-python's DELETE carries a JSON body)."""
        if not super().parse_request():
            return False
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # no route takes an upload: the connection ends here
            return True
        length = self.headers.get("Content-Length")
        if length is None:
            return True
        if not length.strip().isdigit():
            # The body's end cannot be found, so neither can the next request: answer and close.
            self.send_error(400, "Content-Length is not a number")
            return False
        remaining = int(length)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:  # the client went away mid-body
                self.close_connection = True
                return False
            remaining -= len(chunk)
        return True

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stats instead
        pass

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def send_body(self, body: bytes, content_type: str, fault: str | None) -> None:
        """Send a media body, applying a media fault."""
        if fault == "html":
            body, content_type = HTML_PAGE, "text/html"
        elif fault == "garbled":
            magic = b"RIFF\x24\x00\x00\x00WAVE" if body[:4] == b"RIFF" else b"ID3\x04\x00\x00\x00\x00\x00\x7f"
            body = magic + bytes((i * 37 + 11) % 251 for i in range(4000))
        elif fault == "empty":
            body = b""
        elif fault == "liar" and body[:4] == b"RIFF" and body[12:16] == b"fmt ":
            # sample rate 2 Hz, byte rate 4 (mono 16-bit): the same bytes now "last" hours
            body = body[:24] + struct.pack("<II", 2, 4) + body[32:]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "stall":
            self.wfile.write(body[:1024])
            self.wfile.flush()
            self.sim.count("media.stalled")
            time.sleep(self.sim.stall_seconds)
            self.close_connection = True
            return
        self.wfile.write(body)

    def api_fault(self, fault: str | None, provider: str, rate_limited: Callable[[bool], None]) -> bool:
        """Answer with an API-level fault (429 with or without the provider's hint, 5xx as an
        HTML page, as a proxy would send); True when a response was sent."""
        if fault is None or not is_api_fault(fault):
            return False
        self.sim.count(f"{provider}.fault.{fault}")
        if fault in ("429", "429-bare"):
            rate_limited(fault == "429")  # the provider's own 429, with or without its hint
            return True
        status = int(fault)
        page = HTML_PAGE.replace(b"502 Bad Gateway", f"{status} Error".encode())
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)
        return True

    def basic_auth(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, password


def is_api_fault(fault: str) -> bool:
    return fault in ("429", "429-bare", "500", "503")
