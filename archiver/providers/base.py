"""The Provider protocol, and what the clients share: the pagination guard, de-duplication,
and turning one listing item into a Recording or a failed Outcome."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from archiver.errors import ListingIncomplete, RecordingError
from archiver.models import Outcome, Recording

if TYPE_CHECKING:
    import httpx

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


class PageWalk:
    """The loop guard of one listing walk (PROVIDERS.md: cap the loop, never send the same
    page parameters twice, a page with no new id ends the walk).

    It never trusts the provider to stop: the walk ends early, with ListingIncomplete (not
    fatal: what was listed is good, the window stays unfinished), when a page is asked for a
    second time, when a page brings no recording id that was not listed before, or when the
    pages outgrow what they brought (more than twice the pages the ids listed would fill, plus
    ``margin``: a provider padding each page with repeats). The cap scales with what was
    listed, so a long honest walk is never cut short by a fixed number.
    """

    def __init__(self, what: str, *, margin: int = 5, max_pages: int = 100_000) -> None:
        self.what = what
        self.margin = margin
        self.max_pages = max_pages
        self.pages = 0
        self.listed = 0
        self.widest = 0
        self._seen: set[str] = set()
        self._last = ""

    def visit(self, page: str) -> None:
        """Call before requesting ``page`` (its URL or its page parameters)."""
        if page in self._seen:
            self._stop(f"the provider sent us to the same page twice ({page})")
        if self.pages >= self.max_pages:
            self._stop(f"more than {self.max_pages} pages")
        self.pages += 1
        self._seen.add(page)
        self._last = page

    def page(self, items: int, new: int) -> None:
        """Call after a page of ``items`` records, ``new`` of them with ids not listed before."""
        self.listed += new
        self.widest = max(self.widest, items)
        if items and not new:
            self._stop(f"page {self.pages} ({self._last}) brought no recording that was not listed already")
        cap = 2 * (self.listed // max(1, self.widest)) + self.margin
        if self.pages > cap:
            self._stop(f"{self.pages} pages for {self.listed} recordings: the pages keep repeating them")

    def _stop(self, why: str) -> None:
        # The runner logs it, once, with the window it leaves unfinished.
        raise ListingIncomplete(f"{self.what}: {why}")


def raw_id(item: object, field: str) -> str:
    """The id a failed listing item is reported under: the provider's id as text (a number
    is written out), or, for a record without one, a stable stand-in made from its content,
    so it is reported (and remembered) under the same name on every run."""
    value = item.get(field) if isinstance(item, Mapping) else None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    try:
        text = json.dumps(item, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(item)
    return "unidentified-" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def listing_item(
    item: object, field: str, parse: Callable[[Mapping[str, Any]], Recording]
) -> Recording | Outcome:
    """One listing item as a Recording, or, when it cannot be parsed, a ``failed`` Outcome
    (stage ``provider``) under its raw id: one bad record never stops a listing."""
    try:
        if not isinstance(item, Mapping):
            raise RecordingError(f"the listing item is a JSON {json_kind(item)}, not an object")
        return parse(item)
    except RecordingError as exc:
        return Outcome(raw_id(item, field), "failed", stage="provider", error=str(exc))


def json_kind(value: object) -> str:
    """The JSON name of a decoded value's type, for messages about a body's shape."""
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return f"array of {len(value)}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


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


def record_id(item: Mapping[str, Any], field: str) -> str:
    """A record's id as text: a non-empty string, or a whole number written out (an id of
    another type, or none, makes the record unreadable: RecordingError). Whether the id is
    safe in a storage key is checked later, where keys are built."""
    value = item.get(field)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RecordingError(f"the record has no usable {field} ({short(value)})", stage="provider")


def text_field(item: Mapping[str, Any], field: str) -> str | None:
    """An optional text field: None when absent or empty, a number written out, and
    RecordingError for anything else (an object or a list where text belongs)."""
    value = item.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RecordingError(f"{field} is a JSON {json_kind(value)}, not text ({short(value)})", stage="provider")


def url_field(item: Mapping[str, Any], field: str) -> str | None:
    """An optional URL field: None when absent or empty, RecordingError when not text."""
    value = item.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    raise RecordingError(
        f"{field} is a JSON {json_kind(value)}, not a URL ({short(value)})", stage="provider"
    )


def short(value: object, limit: int = 60) -> str:
    """``repr`` of a provider value, cut short for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
