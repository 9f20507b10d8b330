"""One recording, start to finish: fetch -> probe -> store original -> store sidecar.

The sidecar is written last: a recording counts as archived exactly when its sidecar exists.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from archiver import __version__
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
    force: bool = False


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
        decided = plan_one(rec, deps)
        if decided is not None:
            return decided
        return _archive(rec, deps)
    except FatalError:
        raise
    except RecordingError as exc:
        return Outcome(rec.recording_id, "failed", stage=exc.stage, error=str(exc))


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
