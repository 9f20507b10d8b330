"""The provider simulator: Catapult v1 and Plivo recording APIs on one loopback port, Plivo's
media on a second (another origin, as S3 or a CDN is in production).

It follows PROVIDERS.md, quirks included: Catapult's bare-array pages with a ``Link`` header
whose ``next`` is an opaque cursor, short pages, no date filter and no order, one item listed
twice; Plivo's 7-day default search, 400 for a window over 30 days or a limit over 20,
``meta.next`` that drops the filters, numbers as strings, ``add_time`` with and without
offsets, newest first, one object repeated across a page boundary, and Plivo's three paging
modes (``plivo_paging``: offset, cursor, hybrid; see ``plivo_api``). Basic auth everywhere on
the APIs (401 otherwise), and Catapult media too. It counts what it serves (``/_sim/stats``)
and records any credentials that reach the media host, which must be none.
"""

from __future__ import annotations

import os
import re
import threading
import time
import zlib
from collections import Counter
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import parse_qs, unquote, urlsplit

from archiver.sim import audio, data
from archiver.sim.catapult_api import CatapultRoutes
from archiver.sim.faults import FaultPlan, parse_faults
from archiver.sim.handler import SimServer
from archiver.sim.plivo_api import MediaHandler, PlivoRoutes

PLIVO_PAGING = ("offset", "cursor", "hybrid")


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
        plivo_paging: str = "offset",
    ) -> None:
        if plivo_paging not in PLIVO_PAGING:
            raise ValueError(f"unknown Plivo paging mode {plivo_paging!r}: use {', '.join(PLIVO_PAGING)}")
        self.plivo_paging = plivo_paging
        self.plivo_cursors: dict[str, tuple[int, str]] = {}  # cursor -> (position, filters)
        self.plivo_pages: list[tuple[str, int]] = []  # every list page served: (filters, position)
        self.seed = seed
        self.plan = FaultPlan(parse_faults(faults))
        self.stall_seconds = stall_seconds
        self.stats: Counter[str] = Counter()
        self.events: list[str] = []  # every counted request, in order
        self.times: list[tuple[float, str]] = []  # (time.monotonic(), key) of each
        self.media_auth_seen: list[str] = []
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._plivo_hits: list[float] = []
        # Resolved now: what the archiver under test is told later must not change the media.
        self._ffmpeg = ffmpeg or os.environ.get("ARCHIVER_FFMPEG") or _imageio_ffmpeg()
        self._api = SimServer((host, port), ApiHandler, self)
        self._media = SimServer((host, media_port), MediaHandler, self)
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

    def connections(self) -> dict[str, int]:
        """TCP connections accepted so far by the API host and by the media host."""
        return {"api": self._api.connections, "media": self._media.connections}

    # --- what handlers use ------------------------------------------------------------------

    def count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1
            self.events.append(key)
            self.times.append((time.monotonic(), key))  # when: the rate the provider saw

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


class ApiHandler(CatapultRoutes, PlivoRoutes):
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

    # --- both ---------------------------------------------------------------------------------
