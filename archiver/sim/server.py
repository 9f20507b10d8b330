"""The provider simulator: Catapult v1 and Plivo recording APIs on one loopback port, Plivo's
media on a second (another origin, as S3 or a CDN is in production).

It follows PROVIDERS.md, quirks included: Catapult's bare-array pages with a ``Link`` header
whose ``next`` is an opaque cursor, short pages, no date filter and no order, one item listed
twice; Plivo's 7-day default search, 400 for a window over 30 days or a limit over 20,
``meta.next`` that drops the filters, numbers as strings, ``add_time`` with and without
offsets, newest first, one object repeated across a page boundary. Basic auth everywhere on
the APIs (401 otherwise), and Catapult media too. It counts what it serves (``/_sim/stats``)
and records any credentials that reach the media host, which must be none.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import threading
import time
import uuid
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from archiver.sim import audio, data
from archiver.sim.faults import FaultPlan, parse_faults

UTC = UTC
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>The upstream server failed.</p></body></html>"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type, sim: Simulator) -> None:
        super().__init__(addr, handler)
        self.sim = sim


class Simulator:
    """Both providers' APIs and media. ``start()`` binds and serves on threads."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        media_port: int = 0,
        recordings: int = 40,
        seed: int = 1,
        faults: str | None = None,
        start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
        days: int = 60,
        stall_seconds: float = 30.0,
        ffmpeg: str | None = None,
        seconds: tuple[int, int] = (3, 40),
    ) -> None:
        self.plan = FaultPlan(parse_faults(faults))
        self.stall_seconds = stall_seconds
        self.stats: Counter[str] = Counter()
        self.events: list[str] = []  # every counted request, in order
        self.media_auth_seen: list[str] = []
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._plivo_hits: list[float] = []
        # Resolved now: what the archiver under test is told later must not change the media.
        self._ffmpeg = ffmpeg or os.environ.get("ARCHIVER_FFMPEG") or _imageio_ffmpeg()
        self._api = _Server((host, port), ApiHandler, self)
        self._media = _Server((host, media_port), MediaHandler, self)
        self.api_url = f"http://{host}:{self._api.server_address[1]}"
        self.media_url = f"http://{host}:{self._media.server_address[1]}"
        self.catapult = data.catapult_recordings(
            recordings, seed, start, days, self.api_url, self.plan.unsafe_id, seconds
        )
        self.plivo = data.plivo_recordings(
            recordings, seed, start, days, self.api_url, self.media_url, self.plan.unsafe_id, seconds
        )
        self.deleted: set[str] = set()
        self._by_id = {("catapult", r.id): r for r in self.catapult} | {
            ("plivo", r.id): r for r in self.plivo
        }
        self._by_media = {r.media_name: r for r in self.catapult if r.media_name}
        self._threads: list[threading.Thread] = []

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> Simulator:
        for server in (self._api, self._media):
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        for server in (self._api, self._media):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """What a client needs to talk to this simulator."""
        return {
            "CATAPULT_BASE_URL": self.api_url,
            "CATAPULT_USER_ID": data.CATAPULT_USER,
            "CATAPULT_API_TOKEN": data.CATAPULT_TOKEN,
            "CATAPULT_API_SECRET": data.CATAPULT_SECRET,
            "PLIVO_BASE_URL": self.api_url,
            "PLIVO_AUTH_ID": data.PLIVO_AUTH_ID,
            "PLIVO_AUTH_TOKEN": data.PLIVO_AUTH_TOKEN,
        }

    # --- what handlers use ------------------------------------------------------------------

    def count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1
            self.events.append(key)

    def get(self, provider: str, rec_id: str) -> data.SimRecording | None:
        rec = self._by_id.get((provider, rec_id))
        return None if rec is None or rec_id in self.deleted else rec

    def media_by_name(self, name: str) -> data.SimRecording | None:
        return self._by_media.get(name)

    def media_bytes(self, rec: data.SimRecording) -> bytes:
        info = bool(rec.extra.get("info_header", True))
        return _media(rec.fmt or "wav", rec.duration, zlib.crc32(rec.id.encode()), self._ffmpeg_path(), info)

    def _ffmpeg_path(self) -> str:
        return self._ffmpeg

    def rate_limited(self, provider: str, family: str) -> float | None:
        """With the ``ratelimit`` fault: seconds until allowed, per the documented limits."""
        if not self.plan.ratelimit:
            return None
        now = time.monotonic()
        with self._lock:
            if provider == "catapult":  # 1 request per second per endpoint family
                last = self._last.get(family)
                if last is not None and now - last < 1.0:
                    return 1.0 - (now - last)
                self._last[family] = now
                return None
            self._plivo_hits = [t for t in self._plivo_hits if now - t < 5.0]  # 300 per 5 s
            if len(self._plivo_hits) >= 300:
                return 5.0 - (now - self._plivo_hits[0])
            self._plivo_hits.append(now)
            return None


@lru_cache(maxsize=512)
def _media(fmt: str, duration: float, seed: int, ffmpeg: str, info_header: bool) -> bytes:
    if fmt == "mp3":
        return audio.mp3_bytes(duration, seed, ffmpeg, info_header=info_header)
    return audio.wav_bytes(duration, seed)


def _imageio_ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle plus the client's
    # delayed ACK add 40 ms to every small keep-alive response.
    disable_nagle_algorithm = True

    @property
    def sim(self) -> Simulator:
        return self.server.sim

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
            time.sleep(self.sim.stall_seconds)
            self.close_connection = True
            return
        self.wfile.write(body)

    def basic_auth(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, password


class ApiHandler(_Handler):
    """Catapult ``/v1/users/...`` and Plivo ``/v1/Account/...`` on one origin."""

    def do_GET(self) -> None:
        self._route("GET")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        if path == "/_sim/stats":
            return self.send_json(
                200, {"stats": dict(self.sim.stats), "media_auth_seen": len(self.sim.media_auth_seen)}
            )
        m = re.fullmatch(r"/media-redirect/recordings/([^/]+)", path)
        if m:
            self.sim.count("plivo.redirect")
            self.send_response(302)
            self.send_header("Location", f"{self.sim.media_url}/recordings/{m.group(1)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        m = re.fullmatch(r"/v1/users/([^/]+)/(recordings|media|calls)(?:/([^/]+))?/?", path)
        if m:
            return self._catapult(
                method, unquote(m.group(1)), m.group(2), unquote(m.group(3)) if m.group(3) else None, query
            )
        m = re.fullmatch(r"/v1/Account/([^/]+)/Recording/(?:([^/]+)/)?", path)
        if m:
            return self._plivo(
                method, unquote(m.group(1)), unquote(m.group(2)) if m.group(2) else None, query
            )
        return self.send_json(404, {"category": "not-found", "code": "not-found", "message": "no such path"})

    # --- Catapult -----------------------------------------------------------------------------

    def _catapult_error(
        self,
        status: int,
        category: str,
        code: str,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body: dict[str, Any] = {"category": category, "code": code, "details": []}
        if message:
            body["message"] = message
        self.send_json(status, body, headers)

    def _catapult(
        self, method: str, user: str, kind: str, item: str | None, query: dict[str, list[str]]
    ) -> None:
        if self.basic_auth() != (data.CATAPULT_TOKEN, data.CATAPULT_SECRET) or user != data.CATAPULT_USER:
            self.sim.count("catapult.unauthorized")
            return self._catapult_error(401, "unauthorized", "unauthorized", "Invalid credentials")
        if method != "GET":
            return self._catapult_error(405, "method-not-allowed", "method-not-allowed")
        scope = "media" if kind == "media" else ("list" if item is None and kind == "recordings" else "get")
        rec = None
        if kind == "media" and item:
            rec = self.sim.media_by_name(item)
        wait = self.sim.rate_limited("catapult", kind)
        if wait is not None:
            self.sim.count("catapult.ratelimited")
            reset_ms = int((time.time() + wait) * 1000)
            return self._catapult_error(
                429, "too-many-requests", "rate-limit-reached", headers={"X-RateLimit-Reset": str(reset_ms)}
            )
        self.sim.count(f"catapult.{scope}.requests")
        fault = self.sim.plan.take(scope, rec.id if rec else None)
        if self._common_fault(fault, "catapult"):
            return None
        self.sim.count(f"catapult.{scope}")
        if kind == "recordings" and item is None:
            return self._catapult_list(query)
        if kind == "recordings":
            found = self.sim.get("catapult", item or "")
            if found is None:
                return self._catapult_error(404, "not-found", "recording-not-found", "Recording not found")
            return self.send_json(200, found.doc)
        if kind == "calls":
            call = next((r.extra["call"] for r in self.sim.catapult if r.extra["call_id"] == item), None)
            if call is None:
                return self._catapult_error(404, "not-found", "call-not-found", "Call not found")
            return self.send_json(200, call)
        if rec is None or rec.state != "complete" or fault == "404":
            return self._catapult_error(404, "not-found", "media-not-found", "Media not found")
        return self.send_body(self.sim.media_bytes(rec), "audio/wav", fault)

    def _catapult_list(self, query: dict[str, list[str]]) -> None:
        try:
            size = int(query.get("size", ["25"])[0])
            page = int(query.get("page", ["0"])[0])
            cursor = query.get("cursor", [None])[0]
            offset = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else page * size
        except (ValueError, UnicodeDecodeError):
            return self._catapult_error(400, "bad-request", "invalid-parameter", "bad page, size or cursor")
        if not 1 <= size <= 1000 or offset < 0:
            return self._catapult_error(400, "bad-request", "invalid-parameter", "size must be 1..1000")
        items = [r.doc for r in self.sim.catapult if r.id not in self.sim.deleted]
        if len(items) > 1:
            items.append(items[0])  # the same item on two pages
        # Short pages: every other page holds one item less, so only the server's cursor
        # knows where the next page starts.
        count = size - 1 if size > 2 and (offset // size) % 2 == 1 else size
        page_items = items[offset : offset + count]
        base = f"{self.sim.api_url}/v1/users/{data.CATAPULT_USER}/recordings"
        links = [f'<{base}?page=0&size={size}>; rel="first"']
        if offset + count < len(items):
            token = base64.urlsafe_b64encode(str(offset + count).encode()).decode()
            links.append(f'<{base}?size={size}&cursor={token}>; rel="next"')
        if offset > 0:
            links.append(f'<{base}?page={max(0, offset // size - 1)}&size={size}>; rel="previous"')
        self.send_json(200, page_items, {"Link": ", ".join(links)})

    # --- Plivo --------------------------------------------------------------------------------

    def _plivo_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.send_json(status, {"api_id": str(uuid.uuid4()), "error": message}, headers)

    def _plivo(self, method: str, account: str, rec_id: str | None, query: dict[str, list[str]]) -> None:
        if self.basic_auth() != (data.PLIVO_AUTH_ID, data.PLIVO_AUTH_TOKEN) or account != data.PLIVO_AUTH_ID:
            self.sim.count("plivo.unauthorized")
            return self._plivo_error(401, "authentication failed")
        wait = self.sim.rate_limited("plivo", "api")
        if wait is not None:
            self.sim.count("plivo.ratelimited")
            return self._plivo_error(429, "too many requests", {"Retry-After": str(max(1, round(wait)))})
        scope = "list" if rec_id is None else "get"
        self.sim.count(f"plivo.{scope}.requests")
        if self._common_fault(self.sim.plan.take(scope, None), "plivo"):
            return None
        if rec_id is None:
            if method != "GET":
                return self._plivo_error(405, "method not allowed")
            self.sim.count("plivo.list")
            return self._plivo_list(account, query)
        found = self.sim.get("plivo", rec_id)
        if found is None:
            return self._plivo_error(404, "not found")
        if method == "DELETE":
            self.sim.count("plivo.delete")
            self.sim.deleted.add(rec_id)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.sim.count("plivo.get")
        return self.send_json(200, {"api_id": str(uuid.uuid4()), **found.doc})

    def _plivo_list(self, account: str, query: dict[str, list[str]]) -> None:
        q = {k: v[0] for k, v in query.items()}
        try:
            limit = int(q.get("limit", "20"))
            offset = int(q.get("offset", "0"))
            bounds = {
                op: _plivo_time(q[f"add_time__{op}"])
                for op in ("gt", "gte", "lt", "lte")
                if f"add_time__{op}" in q
            }
        except ValueError as exc:
            return self._plivo_error(400, f"invalid parameter: {exc}")
        if not 1 <= limit <= 20 or offset < 0:
            return self._plivo_error(400, "limit must be between 1 and 20")
        now = datetime.now(UTC)
        lower = bounds.get("gte") or bounds.get("gt")
        upper = bounds.get("lt") or bounds.get("lte") or now
        if lower is None:
            lower = now - timedelta(days=7)  # no filter: only the last 7 days are searched
        if upper - lower > timedelta(days=30):
            return self._plivo_error(400, "add_time range cannot be longer than 30 days")

        def keep(r: data.SimRecording) -> bool:
            added = r.extra["added"]
            if "gt" in bounds and not added > bounds["gt"]:
                return False
            if "gte" in bounds and not added >= bounds["gte"]:
                return False
            if "lt" in bounds and not added < bounds["lt"]:
                return False
            if "lte" in bounds and not added <= bounds["lte"]:
                return False
            if not bounds and added < lower:
                return False
            for field in ("call_uuid", "from_number", "to_number", "conference_name"):
                if field in q and r.doc.get(field) != q[field]:
                    return False
            return r.id not in self.sim.deleted

        items = sorted((r for r in self.sim.plivo if keep(r)), key=lambda r: r.extra["added"], reverse=True)
        docs = [r.doc for r in items]
        if len(docs) > 20:
            docs.insert(20, docs[19])  # one object repeated across the first page boundary
        page = docs[offset : offset + limit]
        root = f"/v1/Account/{account}/Recording/"
        more = offset + limit < len(docs)
        meta = {
            "limit": limit,
            "offset": offset,
            "total_count": len(docs),
            "next": f"{root}?limit={limit}&offset={offset + limit}" if more else None,
            "previous": f"{root}?limit={limit}&offset={max(0, offset - limit)}" if offset else None,
        }
        self.send_json(200, {"api_id": str(uuid.uuid4()), "meta": meta, "objects": page})

    # --- both ---------------------------------------------------------------------------------

    def _common_fault(self, fault: str | None, provider: str) -> bool:
        """Apply an API-level fault; True when a response was sent."""
        if fault is None or not _is_api_fault(fault):
            return False
        self.sim.count(f"{provider}.fault.{fault}")
        if fault == "429":
            if provider == "catapult":
                reset = str(int((time.time() + 0.2) * 1000))
                self._catapult_error(
                    429, "too-many-requests", "rate-limit-reached", headers={"X-RateLimit-Reset": reset}
                )
            else:
                self._plivo_error(429, "too many requests", {"Retry-After": "0"})
        elif fault == "429-bare":
            self.send_json(
                429,
                {"error": "too many requests"}
                if provider == "plivo"
                else {"category": "too-many-requests", "code": "rate-limit-reached"},
            )
        else:
            status = int(fault)
            page = HTML_PAGE.replace(b"502 Bad Gateway", f"{status} Error".encode())
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
        return True


def _is_api_fault(fault: str) -> bool:
    return fault in ("429", "429-bare", "500", "503")


def _plivo_time(text: str) -> datetime:
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"bad add_time {text!r}: use YYYY-MM-DD HH:MM[:ss[.uuuuuu]]")


class MediaHandler(_Handler):
    """Plivo's media host: no auth needed, and any Authorization header is a leak."""

    def do_GET(self) -> None:
        if self.headers.get("Authorization"):
            self.sim.media_auth_seen.append(self.path)
        m = re.fullmatch(r"/recordings/([^/]+)\.(mp3|wav)", urlsplit(self.path).path)
        rec = None
        if m:
            name = unquote(m.group(1))
            rec = self.sim.get("plivo", name) or (
                self.sim.plivo[0] if name == "unsafe" and self.sim.plivo else None
            )
        self.sim.count("plivo.media.requests")
        fault = self.sim.plan.take("media", rec.id if rec else None)
        if rec is None or fault == "404":
            self.send_response(404)
            self.send_header("Content-Type", "application/xml")
            body = b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if fault in ("429", "429-bare", "500", "503"):
            self.send_response(int(fault[:3]))
            if fault == "429":
                self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.sim.count("plivo.media")
        ctype = "audio/mpeg" if rec.fmt == "mp3" else "audio/wav"
        self.send_body(self.sim.media_bytes(rec), ctype, fault)
