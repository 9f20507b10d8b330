"""Backfills on a Dask cluster (``--executor dask``): the only module that imports
``distributed`` (the optional ``archiver[dask]`` extra).

The unit of work is a listing window, or a slice of ids to retry: a task lists it, then
fetches, probes, transcodes and stores each recording on the worker, straight to the
destination, and sends back only small Outcome records. The driver alone owns the catalog,
the window bookkeeping and the report, exactly as on the local thread pool (it takes each
Outcome in through the same :class:`~archiver.runner.Tally`).

- Credentials never travel: a task carries the driver's settings with every secret blanked
  (:meth:`Settings.without_secrets`); a worker fills them in from its own environment or
  config file (``ARCHIVER_CONFIG``), and refuses a task for another provider account.
- The provider's rate is kept for the whole cluster: every worker asks one limiter, a plugin
  on the scheduler, for its request's slot (:class:`PaceKeeper`), per provider account +
  endpoint family, as one process's threads share one pacer.
- A task that runs twice (a worker lost mid-task: the scheduler runs it again elsewhere)
  archives nothing twice: a recording whose sidecar is there is skipped (the sidecar rule),
  and the driver counts each recording id once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import platform
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, cast

import distributed
from distributed.diagnostics.plugin import SchedulerPlugin

from archiver import pipeline
from archiver.catalog import Catalog
from archiver.config import Settings, config_path_from, load_settings
from archiver.errors import ArchiverError, ConfigError, FatalError
from archiver.jobs import Ids, Job, Remembered, Window, by_id, list_window, remembered_ids
from archiver.models import Outcome
from archiver.pipeline import Deps
from archiver.profiles import pick_profiles
from archiver.providers import make_client
from archiver.providers.http import Pacer
from archiver.redact import RedactSecrets
from archiver.runner import GroupTracker, RunResult, Tally, first_seen, run_batch
from archiver.session import build_provider, build_storage, make_deps
from archiver.storage.base import make_durable

if TYPE_CHECKING:
    from archiver.api import Hooks

log = logging.getLogger("archiver.run")

# Ids retried by id go to the workers in slices of this many (one task each).
IDS_PER_TASK = 200
# How long the driver waits for a task before it looks at the stop flag again.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class UnitTask:
    """What a worker is sent: plain data, no secret."""

    run_id: str
    provider: str
    unit: Window | Ids
    settings: Settings  # without secrets
    account: str  # the provider account the driver archives; a worker set up for another refuses
    force: bool = False
    profiles: tuple[str, ...] = ()
    keep_original: bool = True
    given_up: frozenset[str] = frozenset()  # at their retry limit: not tried again


@dataclass(frozen=True)
class UnitReport:
    """What a worker sends back: the Outcomes of the recordings it settled, and whether the
    unit's listing ended completely (only then can its window be finished)."""

    unit: Window | Ids
    outcomes: tuple[Outcome, ...]
    complete: bool
    gap: str | None = None  # why the listing ended early
    fatal: str | None = None  # why the worker could not go on (stops the run)
    worker: str = ""


# --- pacing for the whole cluster -----------------------------------------------------------


class PaceKeeper(SchedulerPlugin):
    """The cluster's one limiter, on the scheduler: hands out request slots per key (provider,
    base URL, account, endpoint family), each at least ``interval`` after the one before.
    Slots are delays from the scheduler's monotonic clock, so the hosts' clocks never meet."""

    name = "archiver-pace"
    idempotent = True  # a second run on the same cluster keeps the one limiter and its slots

    def __init__(self) -> None:
        self._next: dict[str, float] = {}  # handlers run on the scheduler's event loop: one at a time

    async def start(self, scheduler: Any) -> None:
        scheduler.handlers["archiver_pace"] = self.claim

    def claim(self, key: str = "", interval: float = 0.0) -> float:
        now = time.monotonic()
        slot = max(now, self._next.get(key, 0.0))
        self._next[key] = slot + interval
        return slot - now


class ClusterPacer(Pacer):
    """A :class:`Pacer` whose next free slot is the scheduler's (:class:`PaceKeeper`)."""

    def __init__(self, rate: float, key: str) -> None:
        super().__init__(rate)
        self.key = key
        # Made in the task's thread; the requests come from the task's own worker threads.
        self._worker = distributed.get_worker()

    def _claim(self, now: float) -> float:
        worker = self._worker
        delay = distributed.utils.sync(
            worker.loop, worker.scheduler.archiver_pace, key=self.key, interval=self._interval
        )
        return now + float(delay)


def cluster_pacer(provider: str) -> Any:
    def make(base_url: str, account: str, family: str, rate: float) -> Pacer:
        return ClusterPacer(rate, f"{provider}|{base_url.rstrip('/')}|{account}|{family}")

    return make


# --- on a worker ----------------------------------------------------------------------------


class _NoCatalog:
    """What a worker has instead of the catalog: any use is a bug, said loudly."""

    def __getattr__(self, name: str) -> NoReturn:
        raise FatalError(f"internal error: a worker asked the catalog for {name!r}; only the driver has it")


_redacting = threading.Lock()
_redacted_secrets: set[str] = set()


def _redact_worker_logs(settings: Settings) -> None:
    """Remove the secrets from every record this worker process logs (its handlers are the
    worker's, set up by dask): once per set of secrets."""
    marker = "\0".join(sorted(settings.secrets()))
    with _redacting:
        if marker in _redacted_secrets:
            return
        _redacted_secrets.add(marker)
        redact = RedactSecrets(settings.redactor())
        # A worker's root logger often has no handler (its records would reach stderr through
        # logging.lastResort, unfiltered): the archiver's records get a handler of their own.
        archiver_log = logging.getLogger("archiver")
        if not archiver_log.handlers:
            own = logging.StreamHandler()
            own.setFormatter(logging.Formatter("%(asctime)s archiver %(levelname)s %(message)s"))
            archiver_log.addHandler(own)
            archiver_log.propagate = False
        for handler in [*logging.getLogger().handlers, *archiver_log.handlers]:
            handler.addFilter(redact)


def worker_settings(task: UnitTask) -> Settings:
    """The driver's settings with this worker's own credentials (environment, or the file
    ``ARCHIVER_CONFIG`` names). ConfigError when they are missing or for another account."""
    own = load_settings(config_path_from(None, os.environ), os.environ, {})
    settings = task.settings.with_secrets_of(own)
    settings.require_provider(task.provider)
    mine = own.catapult.user_id if task.provider == "catapult" else own.plivo.auth_id
    if mine and mine != task.account:
        raise ConfigError(
            f"this worker is set up for {task.provider} account {mine}, the run archives {task.account}"
        )
    return settings


@contextlib.contextmanager
def worker_session(task: UnitTask) -> Iterator[Deps]:
    """Provider (paced by the cluster), storage, HTTP client and encoders for one task; no
    catalog and no run lock (the driver holds both)."""
    settings = worker_settings(task)
    _redact_worker_logs(settings)
    chosen = pick_profiles(task.profiles, settings.profiles)
    storage = build_storage(settings)
    client = make_client(
        timeout=settings.http.timeout_seconds, max_connections=settings.archive.concurrency * 2
    )
    workers = settings.transcode.workers or os.cpu_count() or 2
    encode_pool = ThreadPoolExecutor(workers, thread_name_prefix="encode") if chosen else None
    try:
        provider = build_provider(settings, task.provider, client, pacer=cluster_pacer(task.provider))
        yield make_deps(
            settings,
            provider,
            storage,
            client,
            cast(Catalog, _NoCatalog()),
            force=task.force,
            profiles=chosen,
            keep_original=task.keep_original,
            encode_pool=encode_pool,
        )
    finally:
        if encode_pool is not None:
            encode_pool.shutdown(wait=True)
        client.close()
        storage.close()


def run_unit(task: UnitTask) -> UnitReport:
    """A worker's task: list the unit (or get its ids) and archive each recording on this
    worker's threads, with the driver's rules but without its catalog. Never raises: what
    stops it is the report's ``fatal``."""
    name = _worker_name()
    try:
        with _session_for(task) as deps:
            return _archive_unit(task, deps, name)
    except ArchiverError as exc:
        return UnitReport(task.unit, (), complete=False, fatal=f"on worker {name}: {exc}", worker=name)
    except Exception as exc:  # a bug: stop the run cleanly, never a traceback at the driver
        log.error("internal error on worker %s: %r", name, exc, exc_info=exc)
        return UnitReport(
            task.unit, (), complete=False, fatal=f"internal error on worker {name}: {exc!r}", worker=name
        )


_sessions_lock = threading.Lock()


@dataclass
class _Session:
    stack: contextlib.ExitStack
    deps: Deps
    users: int = 0  # tasks running on it now
    last_used: float = 0.0  # time.monotonic()


_sessions: dict[tuple[str, str], _Session] = {}
# A session no task used for this long belongs to a run that is over but could not say so
# (its driver stopped or died): closed when another task comes.
IDLE_SESSION_SECONDS = 3600.0


@contextlib.contextmanager
def _session_for(task: UnitTask) -> Iterator[Deps]:
    """This worker's session for the task's run, opened by its first task and shared by the
    rest (a boto3 client, an HTTP pool and encoders per window would cost more than many
    windows' work). Several runs may share a worker at once: a session is closed when its
    run ends (:func:`close_sessions`), or once idle for an hour, never while a task uses it."""
    key = (task.run_id, task.provider)
    with _sessions_lock:
        now = time.monotonic()
        for old, idle in list(_sessions.items()):
            if old != key and not idle.users and now - idle.last_used > IDLE_SESSION_SECONDS:
                _sessions.pop(old).stack.close()
        session = _sessions.get(key)
        if session is None:
            stack = contextlib.ExitStack()
            try:
                deps = stack.enter_context(worker_session(task))
            except BaseException:
                stack.close()
                raise
            session = _sessions[key] = _Session(stack, deps)
        session.users += 1
    try:
        yield session.deps
    finally:
        with _sessions_lock:
            session.users -= 1
            session.last_used = time.monotonic()


def close_sessions(run_id: str) -> None:
    """Close this worker's sessions of run ``run_id`` (the driver calls it when the run ends)."""
    with _sessions_lock:
        for key in [k for k, v in _sessions.items() if k[0] == run_id and not v.users]:
            _sessions.pop(key).stack.close()


def _archive_unit(task: UnitTask, deps: Deps, name: str) -> UnitReport:
    tracker = GroupTracker()
    unit = task.unit
    items = list_window(deps, unit, tracker) if isinstance(unit, Window) else by_id(deps, unit.recording_ids)
    outcomes: list[Outcome] = []
    local = RunResult(command="unit", provider=task.provider, account=task.account, dest=deps.storage.url)

    def triage(rec: Any) -> Outcome | None:
        if rec.recording_id in task.given_up and not task.force:  # the driver says why
            return Outcome(rec.recording_id, "failed", stage="retry-limit", error="at its retry limit")
        return pipeline.triage(rec, None, deps)

    run_batch(
        items,
        lambda rec: pipeline.work_one(rec, deps),
        local,
        concurrency=task.settings.archive.concurrency,
        triage=triage,
        on_outcome=outcomes.append,
    )
    # What the report calls archived, the driver's catalog will say: durable first (a local
    # destination syncs its folders in groups; the driver's barrier cannot see this worker's).
    make_durable(deps.storage)
    gap = "; ".join(tracker.gaps) or None
    complete = isinstance(unit, Ids) or (tracker.listed_completely(unit) and not local.fatal)
    return UnitReport(unit, tuple(outcomes), complete, gap=gap, fatal=local.fatal, worker=name)


def _worker_name() -> str:
    try:
        return str(distributed.get_worker().address)
    except ValueError:
        return platform.node()


# --- on the driver --------------------------------------------------------------------------


class DaskExecutor:
    """Runs a job's units on a Dask cluster (``scheduler``: ``tcp://host:8786``, or ``local``
    / ``local:N`` for N worker processes on this machine)."""

    runs_units = True

    def __init__(self, client: distributed.Client, *, max_tasks_in_flight: int = 64, own: Any = None) -> None:
        if max_tasks_in_flight < 1:
            raise ConfigError("--max-tasks-in-flight must be at least 1")
        self.client = client
        self.max_tasks_in_flight = max_tasks_in_flight
        self._own = own  # a LocalCluster this executor started, closed with it
        try:
            client.register_plugin(PaceKeeper(), name=PaceKeeper.name)
        except Exception as exc:
            raise ConfigError(
                f"the Dask scheduler {client.scheduler.address} refused the archiver's rate limiter "
                f"({exc}); install the same archiver[dask] on the scheduler and the workers"
            ) from None

    @classmethod
    def connect(
        cls,
        scheduler: str,
        *,
        max_tasks_in_flight: int = 64,
        env: dict[str, str] | None = None,
        quiet: bool = True,
    ) -> DaskExecutor:
        """Connect to ``scheduler`` (or start ``local:N``, its workers given ``env`` on top of
        this process's environment). ``quiet``: Dask's own log lines only from warnings up."""
        if quiet:
            logging.getLogger("distributed").setLevel(logging.WARNING)
        own = None
        try:
            if scheduler == "local" or scheduler.startswith("local:"):
                n = int(scheduler.partition(":")[2] or (os.cpu_count() or 2))
                own = _without_sigint(
                    distributed.LocalCluster,
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    env=env or {},
                    silence_logs=logging.WARNING if quiet else False,
                )
                client = distributed.Client(own)
            else:
                client = distributed.Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            if own is not None:
                own.close()
            raise FatalError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        return cls(client, max_tasks_in_flight=max_tasks_in_flight, own=own)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.client.close()
        if self._own is not None:
            self._own.close()

    # The driver's loop ----------------------------------------------------------------------

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
    ) -> None:
        """Run ``job``'s units on the cluster and take in what comes back, as run_batch does
        for the local thread pool: each id once, settled (reconciled with the catalog and
        remembered) and counted here; windows finished by ``tracker`` when complete."""
        catalog, scope = deps.catalog, deps.scope

        def settle(outcome: Outcome, _: object) -> Outcome:
            known = catalog.get(scope, outcome.recording_id)
            outcome = pipeline.reconcile(outcome, known, deps)
            pipeline.remember(outcome, deps)
            return outcome

        def on_outcome(outcome: Outcome) -> None:
            tracker.completed(outcome)
            if hooks.progress:
                hooks.progress(result)

        tally: Tally[Any] = Tally(result, settle, on_outcome)
        seen: set[str] = set()

        def take(outcome: Outcome) -> None:
            if outcome.recording_id in seen:  # a remembered id also listed in the overlap
                return
            seen.add(outcome.recording_id)
            result.listed += 1
            tally.record(outcome, None)

        units = list(self._units(job, deps, take))
        given_up = frozenset(k.recording_id for k in catalog.given_up(scope, deps.max_failures))
        base = UnitTask(
            run_id=result.run_id,
            provider=provider,
            unit=Ids(()),
            # The destination as this process resolved it: a relative folder means nothing on a worker.
            settings=_with_dest(settings.without_secrets(), deps.storage.url),
            account=deps.provider.account,
            force=deps.force,
            profiles=profiles,
            keep_original=keep_original,
            given_up=given_up,
        )
        todo = iter(units)
        in_flight: dict[distributed.Future, Window | Ids] = {}

        def submit_next() -> None:
            unit = next(todo, None)
            if unit is not None:
                fut = self.client.submit(run_unit, dataclasses.replace(base, unit=unit), pure=False)
                in_flight[fut] = unit

        for _ in range(self.max_tasks_in_flight):
            submit_next()
        while in_flight and not result.fatal and not hooks.stop.is_set():
            try:
                done = distributed.wait(list(in_flight), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing finished yet: look at the stop flag, wait again
                continue
            for fut in done.done:
                unit = in_flight.pop(fut)
                self._take_report(fut, unit, tracker, result, take)
                submit_next()
        if in_flight:  # stopped: what is queued never starts; its windows stay unfinished
            # A task already running finishes on its worker (threads cannot be stopped) and its
            # report is dropped; its session stays open while it runs (close_sessions skips it).
            self.client.cancel(list(in_flight))
        with contextlib.suppress(Exception):  # best effort: a worker that is gone has nothing open
            self.client.run(close_sessions, result.run_id)

    def _units(self, job: Job, deps: Deps, take: Any) -> Iterator[Window | Ids]:
        """The job's units for the workers; given-up recordings are reported here (the driver
        knows them), and the remembered ones go out as slices of ids."""
        catalog, scope = deps.catalog, deps.scope
        for unit in job.units:
            if isinstance(unit, Remembered):
                if unit.report_given_up:
                    for known in catalog.given_up(scope, deps.max_failures, unit.since, unit.until):
                        take(pipeline.given_up(known))
                yield from _slices(tuple(remembered_ids(unit, deps)))
            elif isinstance(unit, Ids):
                yield from _slices(unit.recording_ids)
            elif not (job.skip_finished and catalog.window_done(scope, unit.since, unit.until)):
                yield unit

    def _take_report(
        self, fut: distributed.Future, unit: Window | Ids, tracker: GroupTracker, result: RunResult, take: Any
    ) -> None:
        try:
            report: UnitReport = fut.result()
        except Exception as exc:  # the scheduler gave up on it (KilledWorker: lost too often)
            gap = f"{_describe(unit)}: the cluster could not run it ({type(exc).__name__}: {exc})"
            log.warning("%s", gap)
            result.failures.append({"recording_id": None, "stage": "cluster", "error": gap})
            return
        if isinstance(unit, Window):
            for outcome in first_seen(report.outcomes):
                tracker.add(unit, outcome.recording_id)
        for outcome in report.outcomes:
            take(outcome)
        if report.gap:
            tracker.gaps.append(report.gap)
        if report.fatal:
            result.fatal = result.fatal or report.fatal
        elif isinstance(unit, Window) and report.complete:
            tracker.close(unit)


def _without_sigint(start: Any, **kwargs: Any) -> Any:
    """``start(**kwargs)`` with SIGINT ignored meanwhile, so the worker processes it spawns
    ignore it for good (an ignored signal stays ignored across exec): a Ctrl-C at the
    terminal, sent to the whole process group, stops the driver alone, which then stops the
    run after the windows in flight and closes its cluster, with no worker tracebacks."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread (a library caller): leave signals alone
        return start(**kwargs)
    try:
        return start(**kwargs)
    finally:
        signal.signal(signal.SIGINT, previous)


def _with_dest(settings: Settings, dest: str) -> Settings:
    return dataclasses.replace(settings, archive=dataclasses.replace(settings.archive, dest=dest))


def _slices(ids: tuple[str, ...]) -> Iterator[Ids]:
    for i in range(0, len(ids), IDS_PER_TASK):
        yield Ids(ids[i : i + IDS_PER_TASK])


def _describe(unit: Window | Ids) -> str:
    if isinstance(unit, Window):
        return f"window {unit.since.isoformat()}..{unit.until.isoformat()}"
    return f"{len(unit.recording_ids)} recording(s) by id"


# --- checks (doctor --executor dask) ----------------------------------------------------------


def worker_facts(settings_without_secrets: Settings, provider_names: tuple[str, ...]) -> dict[str, Any]:
    """What ``doctor --executor dask`` asks each worker: versions, credentials present (never
    their values), ffmpeg, and whether the destination can be written."""
    from archiver.doctor import versions
    from archiver.media.transcode import find_ffmpeg

    facts: dict[str, Any] = {"versions": versions(), "problems": []}
    problems: list[str] = facts["problems"]
    own = load_settings(config_path_from(None, os.environ), os.environ, {})
    settings = settings_without_secrets.with_secrets_of(own)
    for name in provider_names:
        try:
            settings.require_provider(name)
            facts[f"{name}_credentials"] = "present"
        except ConfigError as exc:
            facts[f"{name}_credentials"] = "missing"
            problems.append(str(exc))
        mine = own.catapult.user_id if name == "catapult" else own.plivo.auth_id
        theirs = settings.catapult.user_id if name == "catapult" else settings.plivo.auth_id
        if mine and theirs and mine != theirs:
            problems.append(f"{name}: this worker is set up for account {mine}, the driver archives {theirs}")
    try:
        facts["ffmpeg"] = find_ffmpeg(settings.transcode.ffmpeg)
    except ArchiverError as exc:
        problems.append(f"ffmpeg: {exc}")
    try:
        storage = build_storage(settings)
        try:
            storage.check()
            facts["destination"] = "writable"
        finally:
            storage.close()
    except ArchiverError as exc:
        facts["destination"] = "not writable"
        problems.append(f"destination: {exc}")
    facts["problems"] = [settings.redactor()(p) for p in problems]
    return facts
