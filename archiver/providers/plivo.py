"""Plivo recordings.

Facts (PROVIDERS.md): listing without an ``add_time`` filter searches only the last 7 days and
a window over 30 days is a 400, so every request carries a half-open UTC window of at most 30
days. Pages are ``limit`` (<= 20) + ``offset``; ``meta.next`` only signals "more": the next
request is built here with the same filters. Order is newest first and the set moves while we
walk it, so the window's upper bound is frozen by the caller and ids are de-duplicated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from archiver.errors import NotFoundError, RecordingError
from archiver.models import Recording
from archiver.providers.base import Dedupe, PageGuard
from archiver.providers.http import ApiClient
from archiver.timeutil import lenient_time, windows

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.plivo.com"
MAX_WINDOW = timedelta(days=30)
PAGE_LIMIT = 20


def number(value: Any) -> Decimal | None:
    """Plivo sends numbers as numbers or as strings like ``"345100.00000"``."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


def epoch_ms(value: Any) -> datetime | None:
    ms = number(value)
    if ms is None or ms <= 0:
        return None
    return datetime.fromtimestamp(float(ms) / 1000.0, tz=UTC)


def plivo_time(value: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS[.uuuuuu]`` in UTC, as the ``add_time`` filters take it."""
    v = value.astimezone(UTC)
    text = v.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{v.microsecond:06d}" if v.microsecond else text


def url_format(url: str | None) -> str | None:
    if not url:
        return None
    name = urlsplit(url).path.lower()
    for ext in ("mp3", "wav"):
        if name.endswith("." + ext):
            return ext
    return None


def parse_recording(item: Mapping[str, Any], account: str) -> Recording:
    """Normalise one Plivo recording object (raises RecordingError when it has no id)."""
    rec_id = item.get("recording_id")
    if not isinstance(rec_id, str) or not rec_id:
        raise RecordingError(f"Plivo listing item without a recording_id: {dict(item)!r}"[:200])
    added = lenient_time(item.get("add_time"))
    duration_ms = number(item.get("recording_duration_ms"))
    duration = float(duration_ms) / 1000.0 if duration_ms is not None else None
    started = epoch_ms(item.get("recording_start_ms")) or added
    ended = epoch_ms(item.get("recording_end_ms"))
    if ended is None and started is not None and duration is not None:
        ended = started + timedelta(seconds=duration)
    fmt = item.get("recording_format")
    url = item.get("recording_url")
    return Recording(
        provider="plivo",
        account=account,
        recording_id=rec_id,
        state="complete",
        provider_state=None,
        started_at=started,
        ended_at=ended,
        duration_seconds=duration,
        media_url=url if isinstance(url, str) and url else None,
        format_hint=(str(fmt).lower() if fmt else None) or url_format(url),
        raw=item,
        call_id=item.get("call_uuid") or None,
        conference_name=item.get("conference_name") or None,
        from_number=str(item["from_number"]) if item.get("from_number") else None,
        to_number=str(item["to_number"]) if item.get("to_number") else None,
    )


class PlivoProvider:
    """Client for ``/v1/Account/{auth_id}/Recording/``."""

    name = "plivo"
    server_side_date_filter = True

    def __init__(self, api: ApiClient, *, base_url: str, auth_id: str) -> None:
        self.api = api
        self.account = auth_id
        self._root = f"{base_url.rstrip('/')}/v1/Account/{quote(auth_id, safe='')}/Recording/"

    def list_recordings(self, since: datetime, until: datetime) -> Iterator[Recording]:
        dedupe = Dedupe()
        for start, end in windows(since, until, MAX_WINDOW):
            yield from self._list_window(start, end, dedupe)

    def _list_window(self, start: datetime, end: datetime, dedupe: Dedupe) -> Iterator[Recording]:
        guard = PageGuard(f"Plivo listing {plivo_time(start)}..{plivo_time(end)}")
        offset = 0
        while True:
            params = {
                "limit": PAGE_LIMIT,
                "offset": offset,
                "add_time__gte": plivo_time(start),
                "add_time__lt": plivo_time(end),
            }
            guard.visit(f"offset={offset}")
            body, _ = self.api.get_json(self._root, params=params, pace="api", what="list recordings")
            objects = body.get("objects") if isinstance(body, Mapping) else None
            meta = body.get("meta") if isinstance(body, Mapping) else None
            if not isinstance(objects, list) or not isinstance(meta, Mapping):
                raise RecordingError("list recordings: response has no objects/meta", stage="list")
            for item in objects:
                if not isinstance(item, Mapping):
                    continue
                try:
                    rec = parse_recording(item, self.account)
                except RecordingError as exc:  # no id: nothing to archive it by
                    log.warning("%s; ignored", exc)
                    continue
                if dedupe.first(rec.recording_id):
                    yield rec
            if not meta.get("next") or not objects:
                return
            offset += PAGE_LIMIT

    def enrich(self, rec: Recording) -> Recording:
        """Plivo's recording object carries its numbers already."""
        return rec

    def check_credentials(self) -> None:
        """One small authenticated request (AuthError / ProviderUnavailable when it fails)."""
        now = datetime.now(UTC)
        params = {
            "limit": 1,
            "add_time__gte": plivo_time(now - timedelta(days=1)),
            "add_time__lt": plivo_time(now),
        }
        self.api.get_json(self._root, params=params, pace="api", what="credentials check")

    def get_recording(self, recording_id: str) -> Recording:
        url = f"{self._root}{quote(recording_id, safe='')}/"
        body, _ = self.api.get_json(url, pace="api", what=f"get recording {recording_id}")
        if not isinstance(body, Mapping):
            raise NotFoundError(f"recording {recording_id}: unexpected response")
        raw = {k: v for k, v in body.items() if k != "api_id"}
        return parse_recording(raw, self.account)

    def delete_recording(self, recording_id: str) -> bool:
        url = f"{self._root}{quote(recording_id, safe='')}/"
        return self.api.delete(url, pace="api", what=f"delete recording {recording_id}")

    def media_auth(self, url: str) -> httpx.Auth | None:
        return self.api.scope.auth_for(url)

    def pace_media(self, url: str) -> None:
        if self.api.scope.allows(url):
            self.api.pacers["api"].wait()
