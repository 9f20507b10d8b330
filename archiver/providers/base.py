"""The Provider protocol and the pagination guards the clients share."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

import httpx

from archiver.errors import ProviderUnavailable
from archiver.models import Outcome, Recording

log = logging.getLogger(__name__)


class Provider(Protocol):
    """A telephony provider's recordings, normalised.

    ``server_side_date_filter`` tells the runner whether listing a short window is cheap
    (Plivo filters by ``add_time``) or walks everything anyway (Catapult), so it can choose
    how to window a long range.
    """

    name: str
    account: str
    server_side_date_filter: bool

    def list_recordings(self, since: datetime, until: datetime) -> Iterator[Recording | Outcome]:
        """Recordings that started in ``[since, until)``, each id once.

        Never raises for one bad record: a record that cannot be parsed is yielded as a
        ``failed`` Outcome (stage ``provider``) under its raw id when one can be found, and the
        walk goes on. Raises ListingIncomplete (after yielding what it could) when the walk had
        to stop early, and ListingFailed / ProviderUnavailable / AuthError when it cannot go on.
        """
        ...

    def get_recording(self, recording_id: str) -> Recording:
        """One recording by id; NotFoundError when the provider has none."""
        ...

    def check_credentials(self) -> None:
        """One small authenticated request; AuthError when refused."""
        ...

    def enrich(self, rec: Recording) -> Recording:
        """Details the listing lacks (Catapult: numbers and direction from the call)."""
        ...

    def media_auth(self, url: str) -> httpx.Auth | None:
        """Credentials for a media URL: only for the provider's own hosts, else None."""
        ...

    def pace_media(self, url: str) -> None:
        """Wait for the provider's rate limit before a media request to ``url``."""
        ...


class Deleter(Protocol):
    """The optional capability of deleting a recording at the provider (Plivo; Catapult v1
    has no recording DELETE)."""

    def delete_recording(self, recording_id: str) -> bool:
        """Delete it; False when it was already gone (404)."""
        ...


class PageGuard:
    """Stops a pagination loop that would never end: a repeated URL or too many pages."""

    def __init__(self, what: str, max_pages: int = 100_000) -> None:
        self.what = what
        self.max_pages = max_pages
        self.pages = 0
        self._seen: set[str] = set()

    def visit(self, url: str) -> None:
        self.pages += 1
        if url in self._seen:
            raise ProviderUnavailable(f"{self.what}: the provider sent the same page twice ({url})")
        if self.pages > self.max_pages:
            raise ProviderUnavailable(f"{self.what}: more than {self.max_pages} pages; stopping")
        self._seen.add(url)


class Dedupe:
    """Yields each recording id once (listings repeat items across pages)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self.duplicates = 0

    def first(self, recording_id: str) -> bool:
        if recording_id in self._seen:
            self.duplicates += 1
            log.debug("duplicate recording %s in listing ignored", recording_id)
            return False
        self._seen.add(recording_id)
        return True
