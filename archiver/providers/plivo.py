"""Plivo recordings.

Facts (PROVIDERS.md): listing without an ``add_time`` filter searches only the last 7 days and
a window over 30 days is a 400, so every request carries a half-open UTC window of at most 30
days. Pages are ``limit`` (<= 20) + an ``offset`` or, on cursor and hybrid deployments, the
opaque ``cursor`` that ``meta.next`` carries: ``next_page`` takes only those paging parameters
from it, and every request is built here with our own filters. Order is newest first and the
set moves while we walk it, so the window's upper bound is frozen by the caller and ids are
de-duplicated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from archiver.errors import FatalError, ListingFailed, ListingIncomplete, RecordingError
from archiver.models import Outcome, Recording
from archiver.providers.base import (
    Dedupe,
    PageWalk,
    json_kind,
    listing_item,
    record_id,
    short,
    text_field,
    url_field,
)
from archiver.providers.http import ApiClient, describe_body
from archiver.timeutil import lenient_time, windows

log = logging.getLogger(__name__)

MAX_WINDOW = timedelta(days=30)
PAGE_LIMIT = 20


def number(value: Any, field: str = "number") -> Decimal | None:
    """Plivo sends numbers as numbers or as strings like ``"345100.00000"``. None when absent
    or empty; RecordingError when present but not a finite number (``NaN``, ``Infinity``,
    ``"soon"``, an object)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordingError(f"{field} is not a number ({short(value)})", stage="provider")
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise RecordingError(f"{field} is not a number ({short(value)})", stage="provider") from None
    if not parsed.is_finite():
        raise RecordingError(f"{field} is not a finite number ({short(value)})", stage="provider")
    return parsed


def epoch_ms(value: Any, field: str = "time") -> datetime | None:
    """A time in epoch milliseconds; None when absent or zero (Plivo's "not set"), and
    RecordingError when it is not a time a datetime can hold (``1e20``, negative)."""
    ms = number(value, field)
    if ms is None or ms == 0:
        return None
    try:
        if ms < 0:
            raise ValueError("before 1970")
        return datetime.fromtimestamp(float(ms) / 1000.0, tz=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise RecordingError(
            f"{field} is not a usable epoch time ({short(value)}: {exc})", stage="provider"
        ) from None


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
    """Normalise one Plivo recording object. RecordingError (stage ``provider``) when it
    cannot be: no id, a number that is not one, a time out of range, no start time."""
    rec_id = record_id(item, "recording_id")
    added = lenient_time(item.get("add_time"))
    duration_ms = number(item.get("recording_duration_ms"), "recording_duration_ms")
    if duration_ms is not None and duration_ms < 0:
        raise RecordingError(f"recording_duration_ms is negative ({duration_ms})", stage="provider")
    duration = float(duration_ms) / 1000.0 if duration_ms is not None else None
    started = epoch_ms(item.get("recording_start_ms"), "recording_start_ms") or added
    if started is None:
        raise RecordingError("the record has no start time (recording_start_ms, add_time)", stage="provider")
    ended = epoch_ms(item.get("recording_end_ms"), "recording_end_ms")
    if ended is None and duration is not None:
        try:
            ended = started + timedelta(seconds=duration)
        except OverflowError:
            raise RecordingError(
                f"recording_duration_ms is out of range ({duration_ms})", stage="provider"
            ) from None
    fmt = text_field(item, "recording_format")
    url = url_field(item, "recording_url")
    return Recording(
        provider="plivo",
        account=account,
        recording_id=rec_id,
        state="complete",
        provider_state=None,
        started_at=started,
        ended_at=ended,
        duration_seconds=duration,
        media_url=url,
        format_hint=(fmt.lower() if fmt else None) or url_format(url),
        raw=item,
        call_id=text_field(item, "call_uuid"),
        conference_name=text_field(item, "conference_name"),
        from_number=text_field(item, "from_number"),
        to_number=text_field(item, "to_number"),
    )


def next_page(meta: Mapping[str, Any] | None, items: int, sent: Mapping[str, Any]) -> dict[str, Any] | None:
    """The page parameters of the request after the page asked for with ``sent`` (which
    brought ``items`` objects and ``meta``, None when the answer had no ``meta``), or None when
    the listing has ended. The one place that decides it (PROVIDERS.md, "Paging modes").

    Only the paging parameters are taken from ``meta.next``; the caller sends its own filters
    (and ``limit``) beside them, since whether ``next`` keeps them is unknown:

    - a ``cursor`` in ``meta.next``: that cursor and no ``offset`` (a hybrid deployment
      applies an offset sent beside a cursor, which would pin the walk to one page);
    - an ``offset``: that offset;
    - no ``meta.next``: the end, unless there was no ``meta`` at all and the page came back
      full, when the only sign of more is the full page: ``offset += limit``.

    A ``meta.next`` that carries neither (or an unreadable one) is ListingIncomplete: the
    provider says there is more and we cannot tell how to ask for it, so the window is left
    unfinished rather than taken as complete.
    """
    if meta is None:
        if items < PAGE_LIMIT:
            return None
        if "cursor" in sent:  # an offset would restart a cursor walk: there is no safe next page
            raise ListingIncomplete("a full page after a cursor came without meta")
        return {"offset": int(sent.get("offset", 0)) + PAGE_LIMIT}
    nxt = meta.get("next")
    if nxt is None or nxt == "":
        return None
    if not isinstance(nxt, str):
        raise ListingIncomplete(f"meta.next is a JSON {json_kind(nxt)}, not a URL ({short(nxt)})")
    query = parse_qs(urlsplit(nxt).query, keep_blank_values=True)
    cursor = (query.get("cursor") or [""])[-1]
    if cursor:
        return {"cursor": cursor}
    offset = (query.get("offset") or [""])[-1]
    if offset.isascii() and offset.isdigit():
        return {"offset": int(offset)}
    raise ListingIncomplete(f"meta.next carries neither a cursor nor an offset ({short(nxt)})")


def paging_text(page: Mapping[str, Any]) -> str:
    """A page's paging parameters as one text, for the loop guard and for messages."""
    return "&".join(f"{k}={v}" for k, v in sorted(page.items()))


class PlivoProvider:
    """Client for ``/v1/Account/{auth_id}/Recording/``."""

    name = "plivo"
    server_side_date_filter = True

    def __init__(self, api: ApiClient, *, base_url: str, auth_id: str) -> None:
        self.api = api
        self.account = auth_id
        self._root = f"{base_url.rstrip('/')}/v1/Account/{quote(auth_id, safe='')}/Recording/"

    def list_recordings(self, since: datetime, until: datetime) -> Iterator[Recording | Outcome]:
        dedupe = Dedupe()
        for start, end in windows(since, until, MAX_WINDOW):
            yield from self._list_window(start, end, dedupe)

    def _list_window(self, start: datetime, end: datetime, dedupe: Dedupe) -> Iterator[Recording | Outcome]:
        label = f"Plivo listing add_time [{plivo_time(start)}, {plivo_time(end)})"
        walk = PageWalk(label)
        filters = {"add_time__gte": plivo_time(start), "add_time__lt": plivo_time(end)}
        page: dict[str, Any] | None = {"offset": 0}
        while page is not None:
            walk.visit(paging_text(page))
            objects, meta = self._page(label, {"limit": PAGE_LIMIT, **page, **filters}, page)
            new = 0
            for item in objects:
                got = listing_item(item, "recording_id", lambda raw: parse_recording(raw, self.account))
                if dedupe.first(got.recording_id):
                    new += 1
                    yield got
            walk.page(len(objects), new)
            try:
                page = next_page(meta, len(objects), page)
            except ListingIncomplete as exc:
                raise ListingIncomplete(f"{label}: {exc}") from None

    def _page(
        self, label: str, params: Mapping[str, Any], paging: Mapping[str, Any]
    ) -> tuple[list[Any], Mapping[str, Any] | None]:
        """One list page's ``objects`` and ``meta`` (None when the answer has none: then only
        a full page says there may be more); ListingFailed when the answer cannot be used (a
        4xx, a redirect, not the envelope), with the window, the page and the response named."""
        what = f"{label} ({paging_text(paging)})"
        try:
            body, response = self.api.get_json(self._root, params=params, pace="api", what=what)
        except FatalError:
            raise
        except RecordingError as exc:
            raise ListingFailed(str(exc)) from None
        objects = body.get("objects") if isinstance(body, Mapping) else None
        meta = body.get("meta") if isinstance(body, Mapping) else None
        if not isinstance(objects, list) or not (meta is None or isinstance(meta, Mapping)):
            keys = ", ".join(sorted(map(str, body))[:8]) if isinstance(body, Mapping) else ""
            raise ListingFailed(
                f"{what}: HTTP {response.status_code} answer is a "
                f"JSON {json_kind(body)}{f' with keys {keys}' if keys else ''}, not the "
                f"objects/meta envelope ({describe_body(response)})"
            )
        return objects, meta

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
            raise RecordingError(
                f"get recording {recording_id}: the answer is a JSON {json_kind(body)}, not an object",
                stage="provider",
            )
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
