"""Bandwidth Catapult v1 recordings.

Facts (PROVIDERS.md): the list is a bare JSON array paged by a ``Link`` header; there is no
date filter and no promised order, so every page is walked and ``startTime`` filtered here;
the ``next`` URL is followed verbatim (it may be a cursor). Media needs Basic auth on every
request. ``recording``/``saving`` are pending, ``error`` is a failure, ``complete`` archives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from archiver.errors import NotFoundError, RecordingError
from archiver.models import Recording, State
from archiver.providers.base import Dedupe, PageGuard
from archiver.providers.http import ApiClient
from archiver.timeutil import lenient_time

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.catapult.inetwork.com"
STATES: Mapping[str, State] = {
    "complete": "complete",
    "recording": "pending",
    "saving": "pending",
    "error": "error",
}


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
    """Normalise one Catapult recording object (raises RecordingError when it has no id)."""
    rec_id = item.get("id")
    if not isinstance(rec_id, str) or not rec_id:
        raise RecordingError(f"Catapult listing item without an id: {dict(item)!r}"[:200])
    provider_state = item.get("state")
    state: State = STATES.get(str(provider_state), "pending")
    started = lenient_time(item.get("startTime"))
    ended = lenient_time(item.get("endTime"))
    call_url = item.get("call")
    call_id = urlsplit(call_url).path.rstrip("/").rsplit("/", 1)[-1] if call_url else None
    media = item.get("media")
    return Recording(
        provider="catapult",
        account=account,
        recording_id=rec_id,
        state=state,
        provider_state=str(provider_state) if provider_state is not None else None,
        started_at=started,
        ended_at=ended,
        duration_seconds=(ended - started).total_seconds() if started and ended else None,
        media_url=quote_media_url(media) if media else None,
        format_hint=media_format(media),
        raw=item,
        call_id=call_id or None,
    )


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

    def list_recordings(self, since: datetime, until: datetime) -> Iterator[Recording]:
        url: str | None = f"{self._root}/recordings?page=0&size={self.page_size}"
        guard = PageGuard("Catapult recordings listing")
        dedupe = Dedupe()
        while url:
            guard.visit(url)
            body, response = self.api.get_json(url, pace="recordings", what="list recordings")
            if not isinstance(body, list):
                raise RecordingError("list recordings: expected a JSON array", stage="list")
            for item in body:
                if not isinstance(item, Mapping):
                    continue
                try:
                    rec = parse_recording(item, self.account)
                except RecordingError as exc:  # no id: nothing to archive it by
                    log.warning("%s; ignored", exc)
                    continue
                if not dedupe.first(rec.recording_id):
                    continue
                # Items without a start time cannot be placed in a window: list them so the
                # run reports them (pending or failed) rather than losing them silently.
                if rec.started_at is None or since <= rec.started_at < until:
                    yield rec
            nxt = response.links.get("next", {}).get("url")
            url = self.api.absolute(nxt, str(response.url)) if nxt else None
        log.debug("catapult listing: %d pages, %d duplicates", guard.pages, dedupe.duplicates)

    def enrich(self, rec: Recording) -> Recording:
        """Numbers and direction from the recording's call (``/calls/{callId}``), when asked for
        and the call still exists; the recording as it was otherwise."""
        if not self.call_details or not rec.call_id:
            return rec
        url = f"{self._root}/calls/{quote(rec.call_id, safe='')}"
        try:
            call, _ = self.api.get_json(url, pace="calls", what=f"call of {rec.recording_id}")
        except NotFoundError:
            log.debug("recording %s: call %s is gone; no numbers", rec.recording_id, rec.call_id)
            return rec
        except RecordingError as exc:
            log.warning("recording %s: call details unavailable: %s", rec.recording_id, exc)
            return rec
        if not isinstance(call, Mapping):
            return rec
        return replace(
            rec,
            from_number=str(call["from"]) if call.get("from") else None,
            to_number=str(call["to"]) if call.get("to") else None,
            direction=str(call["direction"]) if call.get("direction") else None,
        )

    def check_credentials(self) -> None:
        """One small authenticated request (AuthError / ProviderUnavailable when it fails)."""
        self.api.get_json(
            f"{self._root}/recordings?page=0&size=1", pace="recordings", what="credentials check"
        )

    def get_recording(self, recording_id: str) -> Recording:
        url = f"{self._root}/recordings/{quote(recording_id, safe='')}"
        body, _ = self.api.get_json(url, pace="recordings", what=f"get recording {recording_id}")
        if not isinstance(body, Mapping):
            raise NotFoundError(f"recording {recording_id}: unexpected response")
        return parse_recording(body, self.account)

    def media_auth(self, url: str) -> httpx.Auth | None:
        return self.api.scope.auth_for(url)

    def pace_media(self, url: str) -> None:
        self.api.pacers["media"].wait()
