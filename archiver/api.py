"""The archiver as a library: ``backfill``, ``run``, ``fetch``, ``verify`` and ``export``
in-process.

The CLI is one caller; an Airflow or Dagster task is another::

    from archiver import api
    from archiver.config import load_settings

    settings = load_settings(None, os.environ, {"archive.dest": "s3://acme-calls/recordings"})
    result = api.backfill(settings, "plivo", since=datetime(2024, 1, 1, tzinfo=UTC),
                          until=datetime(2024, 2, 1, tzinfo=UTC))
    if result.exit_code:  # 1: some failed (result.failures), 3: could not proceed (result.fatal)
        raise RuntimeError(result.summary())

These functions never call ``sys.exit`` and never touch the root logger (they log to
``archiver.*``; the host configures logging). Errors that stop a run before it starts
(``ConfigError``, ``FatalError``...) are raised; what happens to recordings is in the returned
:class:`~archiver.runner.RunResult`. Each takes the same :class:`~archiver.config.Settings` the
CLI builds from flags, environment and config file.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from archiver.compliance.deletion import delete_verified
from archiver.compliance.export import ExportResult, FolderSink, Sink, StorageSink, ZipSink, run_export
from archiver.compliance.verify import VerifyResult, verify_archive
from archiver.config import Settings
from archiver.errors import ArchiverError, ConfigError, FatalError, RecordingError
from archiver.jobs import Job, feed, plan_backfill, plan_fetch, plan_run, settle_marks
from archiver.models import Outcome, Recording, check_key_part
from archiver.pipeline import Deps, plan_one, process_one, recall, settle_listed, sidecar_key
from archiver.providers.base import Deleter
from archiver.runner import GroupTracker, RunResult, run_batch
from archiver.session import archive_session, build_storage
from archiver.sidecars import Selection
from archiver.storage import LocalStorage, Storage, open_storage
from archiver.timeutil import check_window_count, iso_z, parse_duration, utcnow

log = logging.getLogger("archiver.run")


@dataclass(frozen=True)
class Options:
    """What ``run``, ``backfill`` and ``fetch`` take beyond Settings (their shared flags)."""

    force: bool = False
    dry_run: bool = False
    limit: int | None = None
    profiles: tuple[str, ...] = ()
    keep_original: bool = True
    delete_after_archive: bool = False
    delete_older_than_days: int | None = None


@dataclass
class Hooks:
    """How a caller follows a run. ``started`` gets the result as it begins (the CLI binds the
    run id to its log lines and starts its progress bar), ``progress`` after each outcome,
    ``say`` the lines of a dry run; ``stop`` set asks the run to stop after the recordings in
    flight (the CLI sets it on Ctrl-C), and ``stopped_by`` names the signal that did, for the
    exit code (130/143)."""

    started: Callable[[RunResult], None] | None = None
    progress: Callable[[RunResult], None] | None = None
    say: Callable[[str], None] = field(default=lambda line: log.info("%s", line))
    stop: threading.Event = field(default_factory=threading.Event)
    stopped_by: Callable[[], int | None] = lambda: None


def backfill(
    settings: Settings,
    provider: str,
    since: datetime,
    until: datetime | None = None,
    *,
    window: timedelta | str = "1d",
    options: Options | None = None,
    hooks: Hooks | None = None,
) -> RunResult:
    """Archive every recording that started in ``[since, until)`` (``until`` at most now),
    window by window; finished windows are remembered, so a second call resumes."""
    now = utcnow()
    end = min(until, now) if until is not None else now
    if since >= end:
        raise ConfigError(f"since ({since.isoformat()}) must be before until ({end.isoformat()})")
    size = parse_duration(window) if isinstance(window, str) else window
    check_window_count(since, end, size)
    opts = options or Options()

    def plan(deps: Deps) -> Job:
        return plan_backfill(
            since,
            end,
            size,
            date_filter=deps.provider.server_side_date_filter,
            revisit=opts.force or opts.dry_run,
        )

    return execute(settings, provider, plan, opts, hooks)


def run(
    settings: Settings,
    provider: str,
    *,
    since: datetime | None = None,
    options: Options | None = None,
    hooks: Hooks | None = None,
) -> RunResult:
    """Archive what the provider added since this provider account + destination's watermark
    (minus ``[archive] overlap``); ``since`` starts a first run and is ignored afterwards."""
    now = utcnow()
    overlap = parse_duration(settings.archive.overlap)

    def plan(deps: Deps) -> Job:
        mark = deps.catalog.watermark(deps.scope)
        if mark is not None and since is not None:
            # The watermark wins: --since -7d in a crontab must not list a week every night.
            log.info(
                "--since %s ignored: this provider account + destination has a watermark (%s); "
                "use backfill for an older range",
                iso_z(since),
                iso_z(mark),
            )
        scope = deps.scope
        job = plan_run(
            mark=mark,
            since=since,
            now=now,
            overlap=overlap,
            date_filter=deps.provider.server_side_date_filter,
            scope=f"{scope.provider} account {scope.account} into {scope.dest}",
        )
        assert job.watermark is not None
        log.info(
            "listing %s to %s (watermark %s, overlap %s)",
            iso_z(job.watermark.start),
            iso_z(now),
            iso_z(mark) or "none",
            overlap,
        )
        return job

    return execute(settings, provider, plan, options or Options(), hooks, now=now)


def fetch(
    settings: Settings,
    provider: str,
    recording_ids: Iterable[str],
    *,
    options: Options | None = None,
    hooks: Hooks | None = None,
) -> RunResult:
    """Archive the named recordings (the provider's get-one endpoint)."""
    ids = tuple(recording_ids)
    for rid in ids:
        check_key_part("recording id", rid)  # UnsafeKeyError: before anything is done
    return execute(settings, provider, lambda deps: plan_fetch(ids), options or Options(), hooks)


def verify(
    settings: Settings,
    selection: Selection | None = None,
    *,
    workers: int = 4,
    on_file: Callable[[VerifyResult], None] | None = None,
) -> VerifyResult:
    """Re-read the archived files of ``settings.archive.dest`` (those ``selection`` picks) and
    compare each with its sidecar: the findings (altered, missing, orphaned, unreadable,
    unsafe) are in the result; nothing is raised for them."""
    storage = build_storage(settings)
    try:
        must_exist(storage)
        storage.check()
        result = verify_archive(
            storage,
            selection or Selection(),
            workers=workers,
            on_file=on_file,
            layout=settings.archive.layout,
        )
        result.dest = storage.url
        return result
    finally:
        storage.close()


def export(
    settings: Settings,
    out: str,
    selection: Selection | None = None,
    *,
    with_renditions: bool = False,
    mask_numbers: bool = False,
    command_line: str = "",
) -> ExportResult:
    """Export the selected recordings of ``settings.archive.dest`` to ``out`` (a folder, a
    ``.zip`` path or ``s3://bucket/prefix``), re-verified as they are copied; raises
    ExportError (and leaves nothing at ``out``) when a copy does not match its sidecar."""
    source = build_storage(settings)
    try:
        must_exist(source)
        source.check()
        return run_export(
            source,
            open_sink(out),
            selection or Selection(),
            with_renditions=with_renditions,
            mask_numbers=mask_numbers,
            command_line=command_line,
            layout=settings.archive.layout,
        )
    finally:
        source.close()


def must_exist(storage: Storage) -> None:
    """A local archive to read must be there: a typo'd --dest is an error, not a clean verify
    of nothing (``check`` would create the folder)."""
    if isinstance(storage, LocalStorage) and not storage.root.is_dir():
        raise ConfigError(f"no archive at {storage.url}: no such folder")


def open_sink(out: str) -> Sink:
    """Where an export goes: ``s3://...``, a ``.zip`` file, or a folder."""
    if out.startswith("s3://"):
        return StorageSink(open_storage(out))
    if out.endswith(".zip"):
        return ZipSink(out)
    if "://" in out and not out.startswith("file://"):
        raise ConfigError(f"bad --out {out!r}: use a folder, a .zip path or s3://bucket/prefix")
    return FolderSink(out.removeprefix("file://"))


def execute(
    settings: Settings,
    provider_name: str,
    plan: Callable[[Deps], Job],
    options: Options,
    hooks: Hooks | None = None,
    *,
    now: datetime | None = None,
) -> RunResult:
    """Open a session, plan the job, archive its recordings (or plan them, for a dry run),
    record the run in the catalog, delete verified copies at the provider when asked, and
    return the result. The one place a job is run."""
    hooks = hooks or Hooks()
    with archive_session(
        settings,
        provider_name,
        force=options.force,
        dry_run=options.dry_run,
        profiles=options.profiles,
        keep_original=options.keep_original,
    ) as session_deps:
        deps = dataclasses.replace(session_deps, stop=hooks.stop)  # downloads stop retrying on a stop
        job = plan(deps)
        result = RunResult(
            command=job.command, provider=provider_name, account=deps.provider.account, dest=deps.storage.url
        )
        if hooks.started:
            hooks.started(result)
        deleter = deleter_for(deps, options)
        candidates: list[tuple[Recording, str]] = []
        guard = threading.Lock()
        tracker = GroupTracker(
            (lambda w: deps.catalog.finish_window(deps.scope, w.since, w.until))
            if job.finish_windows
            else None
        )
        items = feed(job, deps, tracker)

        def process(rec: Recording) -> Outcome:
            outcome = process_one(rec, deps)
            if deleter is not None and outcome.status in ("archived", "skipped") and outcome.sidecar_key:
                with guard:
                    candidates.append((rec, outcome.sidecar_key))
            return outcome

        if options.dry_run:
            dry_run(items, deps, result, options.limit, candidates if deleter else None, hooks)
        else:
            deps.catalog.start_run(result.run_id, job.command, deps.scope, result.started_at)

            def on_outcome(outcome: Outcome) -> None:
                tracker.completed(outcome)
                if hooks.progress:
                    hooks.progress(result)

            run_batch(
                items,
                process,
                result,
                concurrency=settings.archive.concurrency,
                limit=options.limit,
                on_outcome=on_outcome,
                settle=lambda outcome: settle_listed(outcome, deps),
                stop=hooks.stop,
            )
            for gap in tracker.gaps:
                # Not every selected recording could even be listed: exit 1, said in the report.
                result.failures.append({"recording_id": None, "stage": "list", "error": gap})
            try:  # also after a fatal stop: marks move only as far as the run got
                settle_marks(job, deps, tracker, now or result.started_at)
            except FatalError as exc:
                result.fatal = result.fatal or str(exc)
        result.stopped_by = hooks.stopped_by()
        if deleter is not None and not result.fatal and not hooks.stop.is_set():
            # Only now, with the listing walk over (PROVIDERS.md: never delete mid-walk).
            older = options.delete_older_than_days
            done = delete_verified(
                candidates,
                deps,
                deleter,
                run_id=result.run_id,
                older_than=timedelta(days=older) if older is not None else None,
                now=utcnow(),
                dry_run=options.dry_run,
            )
            result.deletions = [d.to_json() for d in done]
            if options.dry_run:
                for d in done:
                    hooks.say(f"{d.result} {d.recording_id}" + (f": {d.detail}" if d.detail else ""))
        if not options.dry_run:
            try:
                deps.catalog.finish_run(result.run_id, result.exit_code, result.report())
                result.last_success = deps.catalog.last_success(deps.scope)
            except FatalError as exc:  # the report and metrics are still written
                result.fatal = result.fatal or str(exc)
    return result


def deleter_for(deps: Deps, options: Options) -> Deleter | None:
    """The provider as a Deleter when deletion after archiving is asked for."""
    if not options.delete_after_archive:
        if options.delete_older_than_days is not None:
            raise ConfigError("--delete-older-than-days goes with --delete-after-archive")
        return None
    if not hasattr(deps.provider, "delete_recording"):
        raise ConfigError(
            f"{deps.provider.name} has no recording delete (Catapult v1 has none): "
            "drop --delete-after-archive"
        )
    return deps.provider  # type: ignore[return-value]


def dry_run(
    items: Iterable[Recording | Outcome],
    deps: Deps,
    result: RunResult,
    limit: int | None,
    candidates: list[tuple[Recording, str]] | None,
    hooks: Hooks,
) -> None:
    """Say what a real run would do; write nothing."""
    seen: set[str] = set()
    to_archive = 0
    say = hooks.say
    try:
        for item in items:
            if (limit is not None and result.listed >= limit) or hooks.stop.is_set():
                break
            if item.recording_id in seen:
                continue
            seen.add(item.recording_id)
            result.listed += 1
            if isinstance(item, Outcome):
                item = recall(item, deps)
                result.add(item)
                say(f"{item.status} {item.recording_id}" + (f": {item.error}" if item.error else ""))
                continue
            try:
                outcome = plan_one(item, deps)
                key = sidecar_key(item, deps.layout) if outcome is None else None
            except RecordingError as exc:
                outcome = Outcome(item.recording_id, "failed", stage=exc.stage, error=str(exc))
            if outcome is None:
                to_archive += 1
                say(f"would archive {item.recording_id} -> {key}")
            else:
                if candidates is not None and outcome.status == "skipped" and outcome.sidecar_key:
                    candidates.append((item, outcome.sidecar_key))
                result.add(outcome)
                say(f"{outcome.status} {item.recording_id}" + (f": {outcome.error}" if outcome.error else ""))
    except FatalError as exc:
        result.fatal = str(exc)
    except ArchiverError as exc:
        result.fatal = f"listing failed: {exc}"
    say(f"dry run: {to_archive} recording(s) would be archived; nothing was written")
