"""One recording, start to finish: fetch -> probe -> store original -> store sidecar -> catalog.

The sidecar is written last: a recording counts as archived exactly when its sidecar exists.
The catalog is told last of all; it only saves work (skips without a storage round trip).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from archiver import __version__
from archiver.catalog import Catalog, Scope
from archiver.errors import FatalError, RecordingError
from archiver.fetch import fetch_media
from archiver.models import (
    CONTENT_TYPES,
    Outcome,
    Recording,
    StoredFile,
    build_key,
    build_sidecar,
    render_sidecar,
)
from archiver.probe import probe_file
from archiver.providers.base import Provider
from archiver.retry import RetryPolicy
from archiver.storage.base import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    """What :func:`process_one` needs, handed in by the CLI's wiring."""

    provider: Provider
    storage: Storage
    client: httpx.Client
    retry: RetryPolicy
    layout: str
    catalog: Catalog
    scope: Scope
    force: bool = False
    max_failures: int = 5


def sidecar_key(rec: Recording, layout: str) -> str:
    return build_key(layout, rec, "json")


def plan_one(rec: Recording, deps: Deps) -> Outcome | None:
    """Decide without downloading: an Outcome for pending / error / done recordings, or None
    when the recording must be archived. Raises RecordingError for unsafe keys."""
    if rec.state == "pending":
        return Outcome(
            rec.recording_id,
            "pending",
            stage="provider",
            error=f"provider state {rec.provider_state!r}: not downloadable yet",
        )
    if rec.state == "error":
        return Outcome(
            rec.recording_id,
            "failed",
            stage="provider",
            error=f"the provider marked the recording as {rec.provider_state!r}",
        )
    key = sidecar_key(rec, deps.layout)
    if not deps.force and deps.storage.exists(key):
        return Outcome(rec.recording_id, "skipped", keys=(key,))
    return None


def process_one(rec: Recording, deps: Deps) -> Outcome:
    """Archive one recording. Never raises for a recording's own fault: that becomes a
    ``failed`` Outcome with its stage and reason. FatalError propagates (stop the run)."""
    try:
        outcome = plan_one(rec, deps) or _archive(rec, deps)
    except FatalError:
        raise
    except RecordingError as exc:
        outcome = Outcome(rec.recording_id, "failed", stage=exc.stage, error=str(exc))
    remember(outcome, rec, deps)
    return outcome


def remember(outcome: Outcome, rec: Recording | None, deps: Deps) -> None:
    """Tell the catalog: archived (and skipped-but-unknown) recordings so later runs skip them
    cheaply; pending and failed ones so later runs retry them by id."""
    catalog, scope, rid = deps.catalog, deps.scope, outcome.recording_id
    if outcome.status == "skipped":
        known = catalog.get(scope, rid)
        if known is not None and known.state == "archived":
            return  # skipped by the catalog itself: nothing new to say
    if outcome.status in ("archived", "skipped"):
        catalog.mark_archived(
            scope,
            rid,
            sidecar_key=outcome.keys[-1] if outcome.keys else "",
            sha256=outcome.sha256,
            size=outcome.bytes_downloaded or None,
            started_at=rec.started_at if rec else None,
        )
    elif outcome.stage != "retry-limit":
        catalog.mark_unsettled(
            scope, rid, outcome.status, outcome.stage, outcome.error, rec.started_at if rec else None
        )


def _archive(rec: Recording, deps: Deps) -> Outcome:
    sc_key = sidecar_key(rec, deps.layout)
    # A --force re-archive over a complete earlier copy must never delete that copy's media.
    replacing = deps.force and deps.storage.exists(sc_key)
    try:
        fetched = fetch_media(deps.client, deps.provider, rec, deps.storage.staging_dir(), deps.retry)
    except RecordingError as exc:
        exc.stage = "fetch"
        raise
    written: list[str] = []
    try:
        probe = probe_file(fetched.path)
        if probe.error:
            log.warning("recording %s: %s (archived all the same)", rec.recording_id, probe.error)
        key = build_key(deps.layout, rec, fetched.format)
        deps.storage.put_file(
            key, fetched.path, content_type=CONTENT_TYPES[fetched.format], sha256=fetched.sha256
        )
        written.append(key)
        original = StoredFile("original", key, fetched.format, fetched.bytes, fetched.sha256, probe)
        doc = build_sidecar(
            rec,
            [original],
            media_url=fetched.media_url,
            fetched_at=fetched.fetched_at,
            archived_at=datetime.now(UTC),
            version=__version__,
        )
        body = render_sidecar(doc)
        deps.storage.put_bytes(sc_key, body, content_type=CONTENT_TYPES["json"])
        return Outcome(
            rec.recording_id,
            "archived",
            bytes_downloaded=fetched.bytes,
            bytes_written=fetched.bytes + len(body),
            keys=(key, sc_key),
            sha256=fetched.sha256,
        )
    except RecordingError:
        # Without its sidecar the media is not archived: remove what this attempt wrote so no
        # orphan is left (the next run writes it again).
        for key in [] if replacing else written:
            with contextlib.suppress(RecordingError):
                deps.storage.delete(key)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(fetched.path)
