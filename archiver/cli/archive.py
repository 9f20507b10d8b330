"""What ``run``, ``backfill`` and ``fetch`` share: run the pipeline over a stream of recordings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import click

from archiver.cli import wiring
from archiver.cli.logs import bind_run
from archiver.cli.output import echo
from archiver.cli.outputs import check_output_path
from archiver.cli.progress import RunProgress
from archiver.cli.signals import StopOnSignal
from archiver.compliance.deletion import delete_verified
from archiver.config import Settings
from archiver.errors import (
    ArchiverError,
    ConfigError,
    FatalError,
    ListingIncomplete,
    NotFoundError,
    RecordingError,
)
from archiver.models import Outcome, Recording
from archiver.pipeline import Deps, plan_one, process_one, recall, settle_listed, sidecar_key
from archiver.providers.base import Deleter
from archiver.runner import GroupTracker, RunResult, run_batch
from archiver.timeutil import iso_z, utcnow

log = logging.getLogger("archiver.run")


@dataclass
class Job:
    """What a command archives: its recordings, and hooks around the batch."""

    items: Iterable[Recording | Outcome]
    on_outcome: Callable[[Outcome], None] | None = None
    after: Callable[[RunResult], None] | None = None
    tracker: GroupTracker | None = None  # its gaps (listings that ended early) fail the run


def archive(
    ctx: click.Context,
    command: str,
    opts: dict[str, Any],
    make_job: Callable[[Deps, Settings], Job],
    extra_flags: dict[str, Any] | None = None,
) -> None:
    """Load settings, wire a session, archive the job's recordings (or plan them with
    --dry-run), record the run in the catalog, report and exit. Ctrl-C / SIGTERM stop it after
    the recordings in flight (:mod:`archiver.cli.signals`), from start to write-up."""
    with StopOnSignal() as stop:
        _archive(ctx, command, opts, make_job, extra_flags, stop)


def _archive(
    ctx: click.Context,
    command: str,
    opts: dict[str, Any],
    make_job: Callable[[Deps, Settings], Job],
    extra_flags: dict[str, Any] | None,
    stop: StopOnSignal,
) -> None:
    flags = {
        **(extra_flags or {}),
        "archive.dest": opts["dest"],
        "archive.layout": opts["layout"],
        "archive.concurrency": opts["concurrency"],
        "archive.catalog": opts["catalog"],
        "transcode.workers": opts["transcode_workers"],
        "s3.storage_class": opts["storage_class"],
        "s3.sse": opts["sse"],
        "s3.sse_kms_key_id": opts["sse_kms_key_id"],
        "s3.object_lock_mode": opts["object_lock_mode"],
        "s3.retain_days": opts["retain_days"],
        "s3.legal_hold": opts["legal_hold"],
    }
    settings = wiring.load(ctx, flags)
    # Before any work: a bad path must not cost a whole run and then a traceback.
    check_output_path("--report", opts["report"], dash=True)
    check_output_path("--metrics-file", opts["metrics_file"])
    provider_name = opts["provider"]
    last_success: datetime | None = None
    with wiring.archive_session(
        settings,
        provider_name,
        force=opts["force"],
        dry_run=opts["dry_run"],
        profiles=opts["transcode_profiles"],
        keep_original=opts["keep_original"],
    ) as deps:
        result = RunResult(
            command=command, provider=provider_name, account=deps.provider.account, dest=deps.storage.url
        )
        bind_run(result.run_id, provider_name)
        job = make_job(deps, settings)
        deleter = deleter_for(deps, opts)
        candidates: list[tuple[Recording, str]] = []
        guard = threading.Lock()

        def process(rec: Recording) -> Outcome:
            outcome = process_one(rec, deps)
            if deleter is not None and outcome.status in ("archived", "skipped") and outcome.keys:
                with guard:
                    candidates.append((rec, outcome.keys[-1]))
            return outcome

        older = opts["delete_older_than_days"]
        older_than = timedelta(days=older) if older is not None else None
        if opts["dry_run"]:
            dry_run(job.items, deps, result, opts["limit"], candidates if deleter else None, stop.event)
        else:
            deps.catalog.start_run(result.run_id, command, deps.scope, result.started_at)
            with RunProgress(result, enabled=not ctx.obj.quiet) as progress:

                def on_outcome(outcome: Outcome) -> None:
                    if job.on_outcome:
                        job.on_outcome(outcome)
                    progress.update(result)

                run_batch(
                    job.items,
                    process,
                    result,
                    concurrency=settings.archive.concurrency,
                    limit=opts["limit"],
                    on_outcome=on_outcome,
                    settle=lambda outcome: settle_listed(outcome, deps),
                    stop=stop.event,
                )
            for gap in job.tracker.gaps if job.tracker else ():
                # Not every selected recording could even be listed: exit 1, said in the report.
                result.failures.append({"recording_id": None, "stage": "list", "error": gap})
            if job.after:  # also after a fatal stop: it moves marks only as far as the run got
                try:
                    job.after(result)
                except FatalError as exc:
                    result.fatal = result.fatal or str(exc)
        result.stopped_by = stop.signum
        if deleter is not None and not result.fatal and not result.stopped_by:
            # Only now, with the listing walk over (PROVIDERS.md: never delete mid-walk).
            done = delete_verified(
                candidates,
                deps,
                deleter,
                run_id=result.run_id,
                older_than=older_than,
                now=utcnow(),
                dry_run=opts["dry_run"],
            )
            result.deletions = [d.to_json() for d in done]
            if opts["dry_run"]:
                for d in done:
                    echo(f"{d.result} {d.recording_id}" + (f": {d.detail}" if d.detail else ""))
        if not opts["dry_run"]:
            try:
                deps.catalog.finish_run(result.run_id, result.exit_code, result.report())
                last_success = deps.catalog.last_success(deps.scope)
            except FatalError as exc:  # the report and metrics are still written
                result.fatal = result.fatal or str(exc)
    wiring.finish(result, opts["report"], opts["metrics_file"], last_success)


def deleter_for(deps: Deps, opts: dict[str, Any]) -> Deleter | None:
    """The provider as a Deleter when --delete-after-archive asks for one."""
    if not opts["delete_after_archive"]:
        if opts["delete_older_than_days"] is not None:
            raise ConfigError("--delete-older-than-days goes with --delete-after-archive")
        return None
    if not hasattr(deps.provider, "delete_recording"):
        raise ConfigError(
            f"{deps.provider.name} has no recording delete (Catapult v1 has none): "
            "drop --delete-after-archive"
        )
    return deps.provider  # type: ignore[return-value]


def retry_remembered(deps: Deps, recording_ids: Iterable[str]) -> Iterator[Recording | Outcome]:
    """Recordings fetched by id (remembered as pending or failed, or named by ``fetch``); a
    failed get is an Outcome, remembered by the runner. A 404 on the get-one is final: the
    provider has no such recording (any more), so it is ``unavailable``, not retried."""
    for rid in recording_ids:
        try:
            yield deps.provider.get_recording(rid)
        except NotFoundError as exc:
            yield Outcome(rid, "unavailable", stage="get", error=str(exc))
        except RecordingError as exc:
            yield Outcome(rid, "failed", stage="get", error=str(exc))


def list_window(
    deps: Deps, window: tuple[datetime, datetime], tracker: GroupTracker
) -> Iterator[Recording | Outcome]:
    """One listing window's recordings, each added to ``tracker``; the window is closed (so it
    can be finished) only when its listing ended completely."""
    try:
        for item in deps.provider.list_recordings(*window):
            tracker.add(window, item.recording_id)
            yield item
    except ListingIncomplete as exc:
        gap = (
            f"listing {iso_z(window[0])}..{iso_z(window[1])} ended early: {exc}; the window stays unfinished"
        )
        log.warning("%s", gap)
        tracker.gaps.append(gap)
        return
    tracker.close(window)


def dry_run(
    items: Iterable[Recording | Outcome],
    deps: Deps,
    result: RunResult,
    limit: int | None,
    candidates: list[tuple[Recording, str]] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Print what a real run would do; write nothing."""
    seen: set[str] = set()
    to_archive = 0
    try:
        for item in items:
            if (limit is not None and result.listed >= limit) or (stop is not None and stop.is_set()):
                break
            if item.recording_id in seen:
                continue
            seen.add(item.recording_id)
            result.listed += 1
            if isinstance(item, Outcome):
                item = recall(item, deps)
                result.add(item)
                detail = f": {item.error}" if item.error else ""
                echo(f"{item.status} {item.recording_id}{detail}")
                continue
            try:
                outcome = plan_one(item, deps)
                key = sidecar_key(item, deps.layout) if outcome is None else None
            except RecordingError as exc:
                outcome = Outcome(item.recording_id, "failed", stage=exc.stage, error=str(exc))
            if outcome is None:
                to_archive += 1
                echo(f"would archive {item.recording_id} -> {key}")
            else:
                if candidates is not None and outcome.status == "skipped" and outcome.keys:
                    candidates.append((item, outcome.keys[-1]))
                result.add(outcome)
                detail = f": {outcome.error}" if outcome.error else ""
                echo(f"{outcome.status} {item.recording_id}{detail}")
    except FatalError as exc:
        result.fatal = str(exc)
    except ArchiverError as exc:
        result.fatal = f"listing failed: {exc}"
    echo(f"dry run: {to_archive} recording(s) would be archived; nothing was written")
