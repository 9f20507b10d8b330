"""Bandwidth Catapult v1 recordings.

Facts (PROVIDERS.md): the list is a bare JSON array paged by a ``Link`` header; there is no
date filter and no promised order, so every page is walked and ``startTime`` filtered here;
the ``next`` URL is followed verbatim (it may be a cursor). Media needs Basic auth on every
request. ``recording``/``saving`` are pending, ``error`` is final (the run counts it
``unavailable``), ``complete`` archives; any other state (``expired``...) is taken as ``error``,
with the state named.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import httpx

from archiver.errors import ArchiverError, FatalError, ListingFailed, NotFoundError, RecordingError
from archiver.models import Outcome, Recording, State
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
from archiver.timeutil import lenient_time

log = logging.getLogger(__name__)

STATES: Mapping[str, State] = {
    "complete": "complete",
    "recording": "pending",
    "saving": "pending",
    "error": "error",
}


def in_range(item: object, since: datetime, until: datetime) -> bool:
    """Whether a listing item belongs to ``[since, until)`` (the listing has no date filter).
    An item without a readable ``startTime`` cannot be placed: it is listed (pending or
    failed, so the run reports it) rather than lost."""
    started = lenient_time(item.get("startTime")) if isinstance(item, Mapping) else None
    return started is None or since <= started < until


def details(call: Mapping[str, Any], field: str) -> str | None:
    """An optional text detail of a call; None for anything that is not text."""
    value = call.get(field)
    return value if isinstance(value, str) and value else None


def media_format(url: str | None) -> str | None:
    """``wav``/``mp3`` from the media name's extension."""
    if not url:
        return None
    name = urlsplit(url).path.rsplit("/", 1)[-1].lower()
    for ext in ("wav", "mp3"):
        if name.endswith("." + ext):
            return ext
    return None


def quote_media_url(url: str) -> str:
    """URL-encode the media name (the last path segment), leaving existing escapes alone."""
    parts = urlsplit(url)
    head, _, name = parts.path.rpartition("/")
    return urlunsplit(parts._replace(path=f"{head}/{quote(name, safe='%-._~')}"))


def parse_recording(item: Mapping[str, Any], account: str) -> Recording:
    """Normalise one Catapult recording object. RecordingError (stage ``provider``) when it
    cannot be: no id, a URL that is not text, no usable ``startTime`` on a recording that is
    not pending. A state outside the four documented ones is kept as an ``error``: the
    recording is unavailable with its state named instead of waiting forever as pending."""
    rec_id = record_id(item, "id")
    provider_state = text_field(item, "state")
    state: State = STATES.get(provider_state or "", "error")
    started = lenient_time(item.get("startTime"))
    if started is None and state != "pending":
        raise RecordingError(
            f"the record ({'state ' + repr(provider_state) if provider_state else 'no state'}) "
            f"has no usable startTime ({short(item.get('startTime'))})",
            stage="provider",
        )
    ended = lenient_time(item.get("endTime"))
    call_url = url_field(item, "call")
    call_id = urlsplit(call_url).path.rstrip("/").rsplit("/", 1)[-1] if call_url else None
    media = url_field(item, "media")
    return Recording(
        provider="catapult",
        account=account,
        recording_id=rec_id,
        state=state,
        provider_state=provider_state,
        started_at=started,
        ended_at=ended,
        duration_seconds=(ended - started).total_seconds() if started and ended else None,
        media_url=quote_media_url(media) if media else None,
        format_hint=media_format(media),
        raw=item,
        call_id=call_id or None,
    )


def next_url(response: httpx.Response, page_url: str, label: str) -> str | None:
    """The ``rel="next"`` URL of a list page, made absolute; None on the last page.
    ListingFailed when the link cannot be requested (a bad port, not http(s), no host)."""
    nxt = response.links.get("next", {}).get("url")
    if not nxt:
        return None
    url = urljoin(page_url, nxt)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError as exc:
        raise ListingFailed(f"{label}: the next link {nxt!r} is not a usable URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ListingFailed(f"{label}: the next link {nxt!r} is not an http(s) URL")
    return url


class CatapultProvider:
    """Client for ``/v1/users/{userId}/recordings`` and its media."""

    name = "catapult"
    server_side_date_filter = False

    def __init__(
        self, api: ApiClient, *, base_url: str, user_id: str, page_size: int = 1000, call_details: bool = True
    ) -> None:
        self.api = api
        self.call_details = call_details
        self.account = user_id
        self.page_size = max(1, min(page_size, 1000))
        self._root = f"{base_url.rstrip('/')}/v1/users/{quote(user_id, safe='')}"
        # Call details are optional: once the endpoint refuses us or stays down, stop asking.
        self._calls_lock = threading.Lock()
        self._calls_off = False
        self._calls_warned = False

    def list_recordings(self, since: datetime, until: datetime) -> Iterator[Recording | Outcome]:
        url: str | None = f"{self._root}/recordings?page=0&size={self.page_size}"
        walk = PageWalk("Catapult recordings listing")
        dedupe = Dedupe()
        while url:
            walk.visit(url)
            label = f"Catapult listing page {url}"
            try:
                body, response = self.api.get_json(url, pace="recordings", what=label)
            except FatalError:
                raise
            except RecordingError as exc:
                raise ListingFailed(str(exc)) from None
            if not isinstance(body, list):
                raise ListingFailed(
                    f"{label}: HTTP {response.status_code} answer is a JSON {json_kind(body)}, "
                    f"not an array ({describe_body(response)})"
                )
            new = 0
            for item in body:
                got = listing_item(item, "id", lambda raw: parse_recording(raw, self.account))
                if not dedupe.first(got.recording_id):
                    continue
                new += 1
                if in_range(item, since, until):
                    yield got
            walk.page(len(body), new)
            url = next_url(response, url, label)
        log.debug("catapult listing: %d pages, %d duplicates", walk.pages, dedupe.duplicates)

    def enrich(self, rec: Recording) -> Recording:
        """Numbers and direction from the recording's call (``/calls/{callId}``), when asked for
        and the call can be read; the recording as it was otherwise. Optional details never
        fail a recording or the run: a refused or broken ``/calls`` endpoint (403, 5xx after
        retries) is warned about once and not asked again this run."""
        if not self.call_details or not rec.call_id or self._calls_off:
            return rec
        url = f"{self._root}/calls/{quote(rec.call_id, safe='')}"
        try:
            call, _ = self.api.get_json(url, pace="calls", what=f"call of {rec.recording_id}")
        except NotFoundError:
            log.debug("recording %s: call %s is gone; no numbers", rec.recording_id, rec.call_id)
            return rec
        except FatalError as exc:  # the endpoint as a whole: refused, or down after retries
            self._calls_unavailable(f"{exc}; numbers are left empty for the rest of this run", off=True)
            return rec
        except ArchiverError as exc:  # this one call: a 4xx, a body that is not JSON
            self._calls_unavailable(f"recording {rec.recording_id}: call details unreadable: {exc}")
            return rec
        if not isinstance(call, Mapping):
            self._calls_unavailable(
                f"recording {rec.recording_id}: call details are a JSON {json_kind(call)}"
            )
            return rec
        return replace(
            rec,
            from_number=details(call, "from"),
            to_number=details(call, "to"),
            direction=details(call, "direction"),
        )

    def _calls_unavailable(self, message: str, *, off: bool = False) -> None:
        """Warn about missing call details once per run (later ones at debug level)."""
        with self._calls_lock:
            first = not self._calls_warned
            self._calls_warned = True
            if off:
                self._calls_off = True
        if first:
            log.warning("call details unavailable: %s", message)
        else:
            log.debug("call details unavailable: %s", message)

    def check_credentials(self) -> None:
        """One small authenticated request (AuthError / ProviderUnavailable when it fails)."""
        self.api.get_json(
            f"{self._root}/recordings?page=0&size=1", pace="recordings", what="credentials check"
        )

    def get_recording(self, recording_id: str) -> Recording:
        url = f"{self._root}/recordings/{quote(recording_id, safe='')}"
        body, _ = self.api.get_json(url, pace="recordings", what=f"get recording {recording_id}")
        if not isinstance(body, Mapping):
            raise RecordingError(
                f"get recording {recording_id}: the answer is a JSON {json_kind(body)}, not an object",
                stage="provider",
            )
        return parse_recording(body, self.account)

    def media_auth(self, url: str) -> httpx.Auth | None:
        return self.api.scope.auth_for(url)

    def pace_media(self, url: str) -> None:
        self.api.pacers["media"].wait()
