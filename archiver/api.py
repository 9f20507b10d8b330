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
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from archiver import pipeline
from archiver.compliance import custody
from archiver.config import Settings
from archiver.errors import ArchiverError, ConfigError, FatalError, RecordingError
from archiver.jobs import Job, Shard, feed, plan_backfill, plan_fetch, plan_run, settle_marks
from archiver.models import Outcome, Recording, check_key_part
from archiver.pipeline import Deps
from archiver.providers.base import Deleter
from archiver.runner import Executor, GroupTracker, RunResult, first_seen, run_batch
from archiver.session import archive_session, build_storage
from archiver.sidecars import Selection
from archiver.storage import LocalStorage, Storage, open_storage
from archiver.timeutil import check_window_count, iso_z, parse_duration, utcnow

if TYPE_CHECKING:  # verify's and export's code is imported when they are called, not for a run
    from archiver.compliance.coverage import Sample
    from archiver.compliance.export import ExportResult, Sink
    from archiver.compliance.verify import VerifyResult

log = logging.getLogger("archiver.run")


LOCAL_EXECUTOR_ONLY = (
    "--limit and --delete-after-archive run on the local executor only: drop --executor dask"
)


@runtime_checkable
class UnitExecutor(Protocol):
    """An executor that runs a job's whole units where it is (a cluster: the workers list
    and archive, and send back Outcomes), while this process keeps the catalog."""

    runs_units: bool

    def archive_job(
        self,
        job: Job,
        deps: Deps,
        settings: Settings,
        result: RunResult,
        tracker: GroupTracker,
        *,
        provider: str,
        profiles: tuple[str, ...],
        keep_original: bool,
        hooks: Hooks,
    ) -> None: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


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
    executor: Executor | UnitExecutor | None = None,
    shard: Shard | str | None = None,
) -> RunResult:
    """Archive every recording that started in ``[since, until)`` (``until`` at most now),
    window by window; finished windows are remembered, so a second call resumes. ``executor``
    runs the work (a :class:`~archiver.cluster.DaskExecutor` runs whole windows on a cluster);
    ``shard`` (``"I/N"``) keeps this host's share of the windows, for N hosts without one."""
    now = utcnow()
    end = min(until, now) if until is not None else now
    if since >= end:
        raise ConfigError(f"since ({since.isoformat()}) must be before until ({end.isoformat()})")
    size = parse_duration(window) if isinstance(window, str) else window
    check_window_count(since, end, size)
    opts = options or Options()

    part = Shard.parse(shard) if isinstance(shard, str) else shard
    if part is not None and part.count > 1:
        # N hosts each pace on their own: each keeps 1/N of the provider account's rate.
        settings = dataclasses.replace(
            settings,
            plivo=dataclasses.replace(
                settings.plivo, requests_per_second=settings.plivo.requests_per_second / part.count
            ),
        )

    def plan(deps: Deps) -> Job:
        return plan_backfill(
            since,
            end,
            size,
            date_filter=deps.provider.server_side_date_filter,
            revisit=opts.force or opts.dry_run,
            shard=part,
        )

    return execute(settings, provider, plan, opts, hooks, executor=executor, shard=part)


def run(
    settings: Settings,
    provider: str,
    *,
    since: datetime | None = None,
    options: Options | None = None,
    hooks: Hooks | None = None,
    executor: Executor | None = None,
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

    return execute(settings, provider, plan, options or Options(), hooks, now=now, executor=executor)


def fetch(
    settings: Settings,
    provider: str,
    recording_ids: Iterable[str],
    *,
    options: Options | None = None,
    hooks: Hooks | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """Archive the named recordings (the provider's get-one endpoint)."""
    ids = tuple(recording_ids)
    for rid in ids:
        check_key_part("recording id", rid)  # UnsafeKeyError: before anything is done

    def plan(deps: Deps) -> Job:
        return plan_fetch(ids)

    return execute(settings, provider, plan, options or Options(), hooks, executor=executor)


def verify(
    settings: Settings,
    selection: Selection | None = None,
    *,
    workers: int = 4,
    on_file: Callable[[VerifyResult], None] | None = None,
    sample: Sample | None = None,
    repair: bool = False,
) -> VerifyResult:
    """Re-read the archived files of ``settings.archive.dest`` (those ``selection`` picks; with
    ``sample``, that many, least recently verified first) and compare each with its sidecar:
    the findings (altered, missing, orphaned, unreadable, unsafe) are in the result; nothing
    is raised for them. Each check is remembered in the catalog and the result has the
    coverage; ``repair`` restores missing or altered originals from their providers
    (:mod:`archiver.compliance.repair`)."""
    storage = build_storage(settings)
    try:
        must_exist(storage)
        if repair:  # reading needs no write access: an auditor's read-only snapshot verifies
            storage.check()
        from archiver.compliance.checkup import verify_with_history

        return verify_with_history(
            settings,
            storage,
            selection or Selection(),
            workers=workers,
            on_file=on_file,
            sample=sample,
            repair=repair,
        )
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
    export_format: str = "plain",
) -> ExportResult:
    """Export the selected recordings of ``settings.archive.dest`` to ``out`` (a folder, a
    ``.zip`` path or ``s3://bucket/prefix``), re-verified as they are copied; raises
    ExportError (and leaves nothing at ``out``) when a copy does not match its sidecar.
    ``export_format`` ``bagit`` makes it a BagIt bag (:mod:`archiver.compliance.bagit`)."""
    from archiver.compliance.bagit import BagSink, bag_root
    from archiver.compliance.export import ZipSink, mask_number, run_export

    if export_format not in EXPORT_FORMATS:
        raise ConfigError(f"export format {export_format!r}: use one of {', '.join(EXPORT_FORMATS)}")
    refuse_archive_name(out)
    source = build_storage(settings)
    try:
        must_exist(source)  # read-only is enough (its custody event is appended after, or said missing)
        try:
            sink = open_sink(out)
        except OSError as exc:  # a folder it may not write in, /proc, a full disk
            raise ConfigError(f"--out {out}: cannot write there: {exc.strerror or exc}") from None
        if export_format == "bagit":
            sink = BagSink(
                sink,
                root=bag_root(out) if isinstance(sink, ZipSink) else "",
                source_organization=settings.export.source_organization,
                mask=mask_number if mask_numbers else None,
            )
        sel = selection or Selection()
        chain, check = custody.read_segment(source)
        try:
            result = run_export(
                source,
                sink,
                selection or Selection(),
                with_renditions=with_renditions,
                mask_numbers=mask_numbers,
                command_line=command_line,
                custody_log=(chain, check.summary()),
            )
        except OSError as exc:  # writing the export (the disk filled up): nothing is left at out
            raise FatalError(
                f"cannot write the export to {out}: {exc.strerror or exc}; nothing was left there"
            ) from None
        details = {
            "export_id": result.export_id,
            "out": out,
            "format": export_format,
            "selection": custody.selection_json(
                dataclasses.replace(sel, number=mask_number(sel.number)) if mask_numbers else sel
            ),
            "options": {"with_renditions": with_renditions, "mask_numbers": mask_numbers},
            "counts": {
                "recordings": result.recordings,
                "files": result.files,
                "bytes": result.bytes,
                "excluded": len(result.excluded),
            },
            "manifest_json_sha256": result.manifest_sha256,
            "custody_log_events": len(check.events),
        }
        try:
            custody.log_event(source, settings, "export", details)
        except ArchiverError as exc:
            result = dataclasses.replace(result, custody_error=str(exc))
        return result
    finally:
        source.close()


EXPORT_FORMATS = ("plain", "bagit")


def must_exist(storage: Storage) -> None:
    """A local archive to read must be there: a typo'd --dest is an error, not a clean verify
    of nothing (``check`` would create the folder)."""
    if isinstance(storage, LocalStorage) and not storage.root.is_dir():
        raise ConfigError(f"no archive at {storage.url}: no such folder")


# Names that promise a format an export is not written in (it would be a folder so named).
NOT_WRITTEN = (".tar", ".tgz", ".tbz2", ".txz", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar")


def refuse_archive_name(out: str) -> None:
    """ConfigError for an ``--out`` like ``x.tar`` or ``x.tar.gz``: an export is a folder, a
    ``.zip`` or an S3 prefix, and a folder named ``x.tar`` would fool whoever receives it."""
    if out.startswith("s3://"):
        return
    path = out.rstrip("/")
    if path.lower().endswith(NOT_WRITTEN):
        stem, suffix = path.rsplit(".", 1)
        if stem.lower().endswith(".tar"):
            stem, suffix = stem[:-4], "tar." + suffix
        raise ConfigError(
            f"--out {out}: exports are written as a folder, a .zip or s3://bucket/prefix, not as "
            f".{suffix}; use {stem}.zip, or export to a folder and tar that"
        )


def open_sink(out: str) -> Sink:
    """Where an export goes: ``s3://...``, a ``.zip`` file, or a folder."""
    from archiver.compliance.export import FolderSink, StorageSink, ZipSink

    if out.startswith("s3://"):
        return StorageSink(open_storage(out))
    if out.lower().endswith(".zip"):  # X.ZIP too: never a folder named like an archive
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
    executor: Executor | UnitExecutor | None = None,
    shard: Shard | None = None,
) -> RunResult:
    """Open a session, plan the job, archive its recordings (or plan them, for a dry run),
    delete verified copies at the provider when asked, record the run in the catalog, and
    return the result. The one place a job is run. The recordings' work (fetch, probe,
    transcode, store) runs on ``executor`` (by default ``[archive] concurrency`` threads);
    this thread alone reads and writes the catalog."""
    hooks = hooks or Hooks()
    cluster = executor if isinstance(executor, UnitExecutor) else None
    if cluster is not None and (options.delete_after_archive or options.limit is not None):
        raise ConfigError(LOCAL_EXECUTOR_ONLY)
    with archive_session(
        settings,
        provider_name,
        force=options.force,
        dry_run=options.dry_run,
        profiles=options.profiles,
        keep_original=options.keep_original,
        shard=str(shard) if shard else "",
    ) as session_deps:
        deps = dataclasses.replace(session_deps, stop=hooks.stop)  # downloads stop retrying on a stop
        job = plan(deps)
        result = RunResult(
            command=job.command, provider=provider_name, account=deps.provider.account, dest=deps.storage.url
        )
        if hooks.started:
            hooks.started(result)
        deleter = deleter_for(deps, options)
        candidates: list[tuple[Recording, str]] | None = [] if deleter else None
        tracker = GroupTracker(
            (lambda w: deps.catalog.finish_window(deps.scope, w.since, w.until))
            if job.finish_windows
            else None
        )
        items = feed(job, deps, tracker)
        if options.dry_run:
            dry_run(items, deps, result, options.limit, candidates, hooks)
        else:
            deps.catalog.start_run(result.run_id, job.command, deps.scope, result.started_at)
            if cluster is not None:  # whole units run where the workers are
                cluster.archive_job(
                    job,
                    deps,
                    settings,
                    result,
                    tracker,
                    provider=provider_name,
                    profiles=options.profiles,
                    keep_original=options.keep_original,
                    hooks=hooks,
                )
            else:
                local = cast(Executor | None, executor)
                archive(items, deps, result, tracker, candidates, settings, options, hooks, local)
            settle_job(job, deps, result, tracker, now or result.started_at)
        result.stopped_by = hooks.stopped_by()
        if deleter and candidates is not None and not result.fatal and not hooks.stop.is_set():
            # Only now, with the listing walk over (PROVIDERS.md: never delete mid-walk).
            delete_phase(candidates, deps, deleter, result, options, hooks)
        if not options.dry_run:
            log_custody(deps, result, settings)
            record_run(deps, result)
    return result


def log_custody(deps: Deps, result: RunResult, settings: Settings) -> None:
    """The run's events in the destination's custody log: its summary when it archived
    anything, the deletions at the provider when it made any. One that cannot be appended is
    a failure of the run (exit 1), said in the report."""
    summary = custody.run_details(result) if result.counts["archived"] else None
    events = [("archive", summary), ("delete", custody.deletion_details(result))]
    for action, details in events:
        if details is None:
            continue
        try:
            # Never carry the catalog's anchor past a cut or rewritten chain: it stays on the
            # event it saw, so `custody verify` still names the break after this append.
            broken = custody.anchor_broken(deps.storage, deps.catalog.custody_anchor(deps.storage.url))
            event = custody.log_event(deps.storage, settings, action, details)
            if broken:
                error = f"{broken}: run `archiver custody verify --dest {deps.storage.url}`"
                result.failures.append({"recording_id": None, "stage": "custody", "error": error})
            else:
                deps.catalog.set_custody_anchor(deps.storage.url, event.seq, event.sha256)
        except ArchiverError as exc:
            error = f"the run's {action} event was not added to the custody log: {exc}"
            result.failures.append({"recording_id": None, "stage": "custody", "error": error})


def archive(
    items: Iterable[Recording | Outcome],
    deps: Deps,
    result: RunResult,
    tracker: GroupTracker,
    candidates: list[tuple[Recording, str]] | None,
    settings: Settings,
    options: Options,
    hooks: Hooks,
    executor: Executor | None,
) -> None:
    """The batch: the catalog decides what it knows (``triage``), the executor does the rest
    (``work_one``), and each Outcome is remembered, counted and tracked on this thread."""

    def triage(rec: Recording) -> Outcome | None:
        return pipeline.triage(rec, deps.catalog.get(deps.scope, rec.recording_id), deps)

    def settle(outcome: Outcome, rec: Recording | None) -> Outcome:
        if rec is None:  # made by the listing itself: what does the catalog know of it?
            outcome = pipeline.recall(outcome, deps)
        pipeline.remember(outcome, deps)
        if (
            candidates is not None
            and rec
            and outcome.status in ("archived", "skipped")
            and outcome.sidecar_key
        ):
            candidates.append((rec, outcome.sidecar_key))
        return outcome

    def on_outcome(outcome: Outcome) -> None:
        tracker.completed(outcome)
        if hooks.progress:
            hooks.progress(result)

    run_batch(
        items,
        lambda rec: pipeline.work_one(rec, deps),
        result,
        concurrency=settings.archive.concurrency,
        executor=executor,
        triage=triage,
        settle=settle,
        limit=options.limit,
        on_outcome=on_outcome,
        stop=hooks.stop,
    )


def settle_job(job: Job, deps: Deps, result: RunResult, tracker: GroupTracker, now: datetime) -> None:
    """After the batch, also after a fatal stop: listing gaps are failures (exit 1, said in
    the report), and marks move only as far as the run got."""
    for gap in tracker.gaps:
        result.failures.append({"recording_id": None, "stage": "list", "error": gap})
    try:
        settle_marks(job, deps, tracker, now)
    except FatalError as exc:
        result.fatal = result.fatal or str(exc)


def delete_phase(
    candidates: list[tuple[Recording, str]],
    deps: Deps,
    deleter: Deleter,
    result: RunResult,
    options: Options,
    hooks: Hooks,
) -> None:
    """Delete at the provider the recordings whose stored copy re-verifies (a dry run says
    what it would delete)."""
    from archiver.compliance.deletion import delete_verified

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


def record_run(deps: Deps, result: RunResult) -> None:
    """The run's report into the catalog; a catalog that fails here still lets the report and
    metrics be written (exit 3)."""
    try:
        deps.catalog.finish_run(result.run_id, result.exit_code, result.report())
        result.last_success = deps.catalog.last_success(deps.scope)
    except FatalError as exc:
        result.fatal = result.fatal or str(exc)


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
    to_archive = 0
    say = hooks.say
    try:
        for item in first_seen(items):
            if (limit is not None and result.listed >= limit) or hooks.stop.is_set():
                break
            result.listed += 1
            if isinstance(item, Outcome):
                item = pipeline.recall(item, deps)
                result.add(item)
                say(f"{item.status} {item.recording_id}" + (f": {item.error}" if item.error else ""))
                continue
            try:
                outcome = pipeline.plan_one(item, deps)
                key = pipeline.sidecar_key(item, deps.layout) if outcome is None else None
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
