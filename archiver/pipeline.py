"""One recording, start to finish: triage (the catalog, on the driver) -> fetch -> probe ->
store original -> store sidecar (on a worker) -> remember (the catalog, on the driver).

The sidecar is written last: a recording counts as archived exactly when its sidecar exists.
The catalog is told last of all, by the driver alone; it only saves work (skips without a
storage round trip). Workers never touch it, so they can run anywhere the destination is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from archiver import __version__
from archiver.catalog import Catalog, Known, Scope
from archiver.errors import FatalError, RecordingError, StorageError, TransientError
from archiver.media.mediacheck import DamagedMedia
from archiver.media.probe import probe_download
from archiver.media.renditions import Made, call_tags, make_rendition
from archiver.media.transcode import Transcoder
from archiver.models import (
    CONTENT_TYPES,
    KNOWN,
    Fetched,
    Outcome,
    Probe,
    Recording,
    StoredFile,
    build_key,
    build_sidecar,
    protection_for,
    recording_json,
    render_sidecar,
    rendition_ext,
)
from archiver.profiles import Profile
from archiver.providers.base import Provider
from archiver.redact import Redactor
from archiver.retry import RetryPolicy
from archiver.storage.base import Storage, make_durable
from archiver.timeutil import utcnow

if TYPE_CHECKING:  # httpx is imported when a run fetches (media.fetch), not for `--help`
    import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    """What :func:`triage`, :func:`work_one` and :func:`remember` need, built by the session."""

    provider: Provider
    storage: Storage
    client: httpx.Client
    retry: RetryPolicy
    layout: str
    catalog: Catalog
    scope: Scope
    force: bool = False
    max_failures: int = 5
    profiles: tuple[Profile, ...] = ()
    keep_original: bool = True
    transcoder: Transcoder | None = None
    encode_pool: Executor | None = None
    lock_mode: str | None = None
    retain_days: int | None = None
    legal_hold: bool = False
    download_deadline: float = 120.0  # seconds; the floor of each download's deadline
    # Removes the configured credentials from what goes into a sidecar: a provider may echo
    # them inside a record (a URL's query, a copied Authorization header).
    redact: Redactor = field(default_factory=Redactor)
    # Set when the run is stopping (Ctrl-C): downloads are not retried any more.
    stop: threading.Event | None = None


def sidecar_key(rec: Recording, layout: str) -> str:
    return build_key(layout, rec, "json")


def plan_one(rec: Recording, deps: Deps) -> Outcome | None:
    """Decide without downloading (a dry run): what the catalog knows, then whether the
    sidecar is there; None when the recording must be archived."""
    return triage(rec, deps.catalog.get(deps.scope, rec.recording_id), deps) or stored(rec, deps)


def triage(rec: Recording, known: Known | None, deps: Deps) -> Outcome | None:
    """What the catalog's record of a recording (``known``) and its listing decide alone, on
    the driver: pending, unavailable, failed too often, or archived before. None when a worker
    must look at it. Raises RecordingError for an unsafe key, before anything is done."""
    rid = rec.recording_id
    if rec.state == "pending":  # may lack what a key needs (start, media) until it completes
        error = f"provider state {rec.provider_state!r}: not downloadable yet"
        return _at(rec, Outcome(rid, "pending", stage="provider", error=error))
    key = sidecar_key(rec, deps.layout)  # refuses unsafe ids before anything else
    if not deps.force and known is not None and known.state == "archived":
        return _at(rec, Outcome(rid, "skipped", stage=KNOWN, keys=(key,)))  # nothing to remember
    if rec.state == "error":
        # Final: the provider will never serve it (PROVIDERS.md). Listed again every night, it
        # is the catalog's known answer, not news. Only while the provider still says so: a
        # recording it serves again is archived.
        if not deps.force and known is not None and known.state == "unavailable":
            return _at(rec, Outcome(rid, "unavailable", stage=KNOWN, error=known.last_error))
        said = f"marked the recording as {rec.provider_state!r}" if rec.provider_state else "gave no state"
        return _at(rec, Outcome(rid, "unavailable", stage="provider", error=f"the provider {said}"))
    if (
        not deps.force
        and known is not None
        and known.state == "failed"
        and known.attempts >= deps.max_failures
    ):
        return given_up(known)
    return None


def stored(rec: Recording, deps: Deps) -> Outcome | None:
    """``skipped`` when the recording's sidecar is in the destination (the sidecar rule: a
    recording is archived exactly when its sidecar exists), unless forced."""
    key = sidecar_key(rec, deps.layout)
    if not deps.force and deps.storage.exists(key):
        return _at(rec, Outcome(rec.recording_id, "skipped", keys=(key,)))
    return None


def work_one(rec: Recording, deps: Deps) -> Outcome:
    """Archive one recording the driver's :func:`triage` let through; runs on a worker and
    never touches the catalog (the driver remembers the Outcome). Never raises for a
    recording's own fault: that becomes a ``failed`` Outcome with its stage and reason; a bug
    (any other exception) fails the recording at stage ``internal``. FatalError propagates
    (stop the run)."""
    try:
        outcome = stored(rec, deps) or _archive(rec, deps)
    except FatalError:
        raise
    except StorageError as exc:
        outcome = Outcome(
            rec.recording_id,
            "failed",
            stage=exc.stage,
            error=str(exc),
            destination_down=exc.destination_down,
        )
    except TransientError as exc:
        # Cut short by a stop (Ctrl-C), it was not the recording's fault: no attempt counted.
        stopping = deps.stop is not None and deps.stop.is_set()
        outcome = Outcome(rec.recording_id, "failed", stage=exc.stage, error=str(exc), counted=not stopping)
    except RecordingError as exc:
        outcome = Outcome(rec.recording_id, "failed", stage=exc.stage, error=str(exc))
    except Exception as exc:  # a bug must cost one recording, remembered, never the batch
        log.error("internal error on %s: %r", rec.recording_id, exc, exc_info=exc)
        outcome = Outcome(rec.recording_id, "failed", stage="internal", error=f"internal error: {exc!r}")
    return _at(rec, outcome)


def _at(rec: Recording, outcome: Outcome) -> Outcome:
    """The Outcome, carrying when its recording started (the catalog keeps it for retries)."""
    return dataclasses.replace(outcome, started_at=rec.started_at) if rec.started_at else outcome


def given_up(known: Known) -> Outcome:
    """The report of a recording at its retry limit: failed, not tried again."""
    error = f"failed {known.attempts} times, last: {known.last_error} (not tried again; --force tries it)"
    return Outcome(known.recording_id, "failed", stage="retry-limit", error=error)


def recall(outcome: Outcome, deps: Deps) -> Outcome:
    """What the catalog already knows of an Outcome the listing produced itself (a record that
    cannot be parsed, a get-by-id that failed or found nothing); reads only. A failure at its
    retry limit is reported as such, not counted again; an id found unavailable before is
    known, not news; a get-by-id that finds nothing of an archived recording (deleted at the
    provider after archiving) is skipped. Anything else is returned as it is."""
    if deps.force or outcome.status not in ("failed", "unavailable") or outcome.stage == "retry-limit":
        return outcome
    known = deps.catalog.get(deps.scope, outcome.recording_id)
    if outcome.status == "failed" and known is not None:
        if known.state == "failed" and known.attempts >= deps.max_failures:
            return given_up(known)
        return outcome
    return reconcile(outcome, known, deps)  # unavailable: as for a worker's Outcome


def reconcile(outcome: Outcome, known: Known | None, deps: Deps) -> Outcome:
    """An Outcome a worker made without the catalog, with what the catalog knows (on the
    driver): the answer :func:`triage` and :func:`recall` would have given on the thread pool.
    A recording at its retry limit is reported as such; one archived before and skipped is
    the catalog's known answer (nothing to write); one found unavailable before is not news,
    nor is one the provider no longer has after it was archived."""
    if known is None or deps.force:
        return outcome
    rid = outcome.recording_id
    if outcome.stage == "retry-limit" and known.state == "failed":
        return given_up(known)
    if outcome.status == "skipped" and known.state == "archived":
        return dataclasses.replace(outcome, stage=KNOWN)
    if outcome.status == "unavailable" and known.state == "unavailable":
        return Outcome(rid, "unavailable", stage=KNOWN, error=known.last_error, started_at=outcome.started_at)
    if outcome.status == "unavailable" and known.state == "archived":
        return Outcome(rid, "skipped", stage=KNOWN, started_at=outcome.started_at)  # gone after archiving
    return outcome  # a failure the worker met is an attempt: counted


def remember(outcome: Outcome, deps: Deps) -> None:
    """Tell the catalog: archived (and skipped-but-unknown) recordings so later runs skip them
    cheaply; pending and failed ones so later runs retry them by id; unavailable ones so later
    runs neither retry them nor report them as news. A failure of the destination is
    remembered without counting an attempt against the recording."""
    catalog, scope, rid = deps.catalog, deps.scope, outcome.recording_id
    if outcome.stage in (KNOWN, "retry-limit"):
        return  # the catalog's own answer: nothing new to say
    if outcome.status in ("archived", "skipped"):
        catalog.mark_archived(
            scope,
            rid,
            sidecar_key=outcome.sidecar_key or "",
            sha256=outcome.sha256,
            size=outcome.bytes_downloaded or None,
            started_at=outcome.started_at,
        )
    else:
        catalog.mark_unsettled(
            scope,
            rid,
            outcome.status,
            outcome.stage,
            outcome.error,
            outcome.started_at,
            count=outcome.counted and not outcome.destination_down,
        )


def _archive(rec: Recording, deps: Deps) -> Outcome:
    sc_key = sidecar_key(rec, deps.layout)
    # A --force re-archive over a complete earlier copy must never delete that copy's media.
    replacing = deps.force and deps.storage.exists(sc_key)
    rec = deps.provider.enrich(rec)
    try:
        from archiver.media.fetch import fetch_media  # httpx: imported when a run fetches

        fetched = fetch_media(
            deps.client,
            deps.provider,
            rec,
            deps.storage.staging_dir(),
            deps.retry,
            deadline_floor=deps.download_deadline,
            stop=deps.stop,
        )
    except RecordingError as exc:
        exc.stage = "fetch"
        raise
    written: list[str] = []
    made: list[Made] = []
    try:
        try:
            # Only a copy that decodes to the recording's length is archived (and may later
            # replace the provider's with --delete-after-archive); a broken one is retried.
            probe = probe_download(fetched.path, fetched.format, rec.duration_seconds)
        except DamagedMedia as exc:
            raise RecordingError(
                f"recording {rec.recording_id}: the downloaded {fetched.format} ({fetched.bytes} bytes) "
                f"is not the recording: {exc}",
                stage="probe",
            ) from None
        key = build_key(deps.layout, rec, fetched.format)
        made, problems = _renditions(rec, fetched, probe, deps)
        # Never lose the provider's bytes: without every rendition, the original stays.
        keep = deps.keep_original or bool(problems) or not made
        if keep and not deps.keep_original:
            log.warning("recording %s: keeping the original, a rendition failed", rec.recording_id)
        protection = protection_for(
            rec.started_at, deps.lock_mode, deps.retain_days, deps.legal_hold, utcnow()
        )
        if protection is not None and protection.note:
            log.warning("recording %s: %s", rec.recording_id, protection.note)
        stored_bytes = 0
        if keep:
            deps.storage.put_file(
                key,
                fetched.path,
                content_type=CONTENT_TYPES[fetched.format],
                sha256=fetched.sha256,
                protection=protection,
            )
            written.append(key)
            stored_bytes += fetched.bytes
        files = [
            StoredFile(
                "original", key if keep else None, fetched.format, fetched.bytes, fetched.sha256, probe
            )
        ]
        for m in made:
            assert m.file.key is not None
            deps.storage.put_file(
                m.file.key,
                m.path,
                content_type=CONTENT_TYPES[m.file.format],
                sha256=m.file.sha256,
                protection=protection,
            )
            written.append(m.file.key)
            stored_bytes += m.file.bytes
            files.append(m.file)
        # The files' names durable before the sidecar that names them (it says "archived").
        make_durable(deps.storage, written)
        doc = build_sidecar(
            rec,
            files,
            media_url=fetched.media_url,
            fetched_at=fetched.fetched_at,
            archived_at=utcnow(),
            version=__version__,
            protection=protection,
        )
        body = render_sidecar(deps.redact.doc(doc))
        deps.storage.put_bytes(sc_key, body, content_type=CONTENT_TYPES["json"], protection=protection)
        return Outcome(
            rec.recording_id,
            "archived",
            bytes_downloaded=fetched.bytes,
            bytes_written=stored_bytes + len(body),
            keys=(*written, sc_key),
            sha256=fetched.sha256,
            problems=tuple(problems),
        )
    except RecordingError:
        # Without its sidecar the media is not archived: remove what this attempt wrote so no
        # orphan is left (the next run writes it again).
        for written_key in [] if replacing else written:
            with contextlib.suppress(RecordingError):
                deps.storage.delete(written_key)
        raise
    finally:
        for path in [fetched.path, *(m.path for m in made)]:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _renditions(
    rec: Recording, fetched: Fetched, probe: Probe, deps: Deps
) -> tuple[list[Made], list[tuple[str, str]]]:
    """Encode every requested profile on the encode pool. A rendition that fails is a problem
    of this recording (stage ``transcode:PROFILE``), never a reason to lose the original."""
    if not deps.profiles:
        return [], []
    tags = call_tags(recording_json(rec), fetched.sha256)

    def one(profile: Profile) -> Made:
        assert deps.transcoder is not None
        key = build_key(deps.layout, rec, rendition_ext(profile.name, profile.ext))
        return make_rendition(
            deps.transcoder,
            profile,
            src=fetched.path,
            src_format=fetched.format,
            src_probe=probe,
            key=key,
            tags=tags,
            staging_dir=deps.storage.staging_dir(),
        )

    if deps.encode_pool is not None:
        futures = [(p, deps.encode_pool.submit(one, p)) for p in deps.profiles]
        results = [(p, _result(f)) for p, f in futures]
    else:
        results = [(p, _call(one, p)) for p in deps.profiles]
    made = [r for _, r in results if isinstance(r, Made)]
    problems = [(f"transcode:{p.name}", r) for p, r in results if isinstance(r, str)]
    if problems and deps.stop is not None and deps.stop.is_set():
        # A stop (Ctrl-C reaches ffmpeg too) cut the encodes short: not the recording's
        # fault, and a sidecar now would hide the missing renditions from every later run.
        # Nothing is stored; the next run archives it whole, with no attempt counted.
        raise TransientError(
            f"recording {rec.recording_id}: renditions cut short by the stop: {problems[0][1]}",
            stage=problems[0][0],
        )
    for stage, error in problems:
        log.error("recording %s: rendition failed at %s: %s", rec.recording_id, stage, error)
    return made, problems


def _result(future: Future[Made]) -> Made | str:
    try:
        return future.result()
    except TransientError:  # ffmpeg stopped by a signal: the recording is tried again, whole
        raise
    except RecordingError as exc:
        return str(exc)
    except Exception as exc:  # a bug in one rendition must not lose the recording
        log.exception("internal error while transcoding")
        return f"internal error: {exc!r}"


def _call(fn: Callable[[Profile], Made], profile: Profile) -> Made | str:
    try:
        return fn(profile)
    except TransientError:
        raise
    except RecordingError as exc:
        return str(exc)
    except Exception as exc:
        log.exception("internal error while transcoding")
        return f"internal error: {exc!r}"
