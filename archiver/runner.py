"""Batches: feed recordings to bounded worker threads, count outcomes, build the run report."""

from __future__ import annotations

import dataclasses
import logging
import signal
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from archiver.errors import ArchiverError, ExitCode, FatalError, RecordingError
from archiver.models import KNOWN, Outcome
from archiver.timeutil import iso_z

log = logging.getLogger(__name__)

STATUSES = ("archived", "skipped", "pending", "failed", "unavailable")
# The version of the run report (--report): raised when a key changes meaning or goes, as
# the --json documents' (archiver.cli.outputs.JSON_SCHEMA_VERSION).
REPORT_SCHEMA_VERSION = 1


@dataclass
class RunResult:
    """Everything the report and the exit code are made of."""

    command: str
    provider: str
    account: str
    dest: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    listed: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    bytes_downloaded: int = 0
    bytes_written: int = 0
    failures: list[dict[str, str | None]] = field(default_factory=list)
    # Recordings the provider no longer has (or marked ``error``): final, never retried.
    # ``new`` is True for those this run found; they alone make the exit code 1.
    unavailable: list[dict[str, str | bool | None]] = field(default_factory=list)
    fatal: str | None = None
    stopped_by: int | None = None  # the signal that stopped the run (SIGINT, SIGTERM)
    last_success: datetime | None = None  # the scope's last clean run (for the metrics file)
    deletions: list[dict[str, str | None]] | None = None  # None: deletion not asked for

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.status] += 1
        self.bytes_downloaded += outcome.bytes_downloaded
        self.bytes_written += outcome.bytes_written
        if outcome.status == "failed":
            self.failures.append(
                {"recording_id": outcome.recording_id, "stage": outcome.stage, "error": outcome.error}
            )
        if outcome.status == "unavailable":
            self.unavailable.append(
                {
                    "recording_id": outcome.recording_id,
                    "stage": outcome.stage,
                    "error": outcome.error,
                    "new": outcome.stage != KNOWN,
                }
            )
        for stage, error in outcome.problems:
            self.failures.append({"recording_id": outcome.recording_id, "stage": stage, "error": error})

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:  # as a shell reports a process its signal ended
            return ExitCode.for_signal(self.stopped_by)
        if self.fatal:
            return ExitCode.CANNOT_PROCEED
        # A recording found unavailable is news once (a typo'd id, a recording the provider
        # lost): that run exits 1; later runs count it as known and stay 0.
        news = any(u["new"] for u in self.unavailable)
        return ExitCode.FAILED if self.counts["failed"] or self.failures or news else ExitCode.OK

    def _names(self) -> dict[str, str]:
        # `transcode` writes renditions of what is archived already: those it wrote are
        # encoded (summary and report; the metrics keep the status names as label values).
        return {"archived": "encoded"} if self.command == "transcode" else {}

    def summary(self) -> str:
        names = self._names()
        counts = " ".join(f"{names.get(s, s)}={self.counts[s]}" for s in STATUSES)
        line = f"listed={self.listed} {counts}"
        if self.deletions is not None:
            done = sum(1 for d in self.deletions if d["result"] in ("deleted", "already-gone"))
            planned = sum(1 for d in self.deletions if d["result"] == "would-delete")
            line += f" deleted={done}" + (f" would_delete={planned}" if planned else "")
        if self.stopped_by is not None:
            line += f" STOPPED by {signal.Signals(self.stopped_by).name}"
        return line + (f" ABORTED: {self.fatal}" if self.fatal else "")

    def report(self) -> dict[str, Any]:
        names = self._names()
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "run_id": self.run_id,
            "command": self.command,
            "provider": self.provider,
            "account": self.account,
            "dest": self.dest,
            "started_at": iso_z(self.started_at),
            "finished_at": iso_z(self.finished_at),
            "counts": {"listed": self.listed, **{names.get(s, s): self.counts[s] for s in STATUSES}},
            "bytes_downloaded": self.bytes_downloaded,
            "bytes_written": self.bytes_written,
            "failures": self.failures,
            "unavailable": self.unavailable,
            "fatal": self.fatal,
            "stopped_by": signal.Signals(self.stopped_by).name if self.stopped_by is not None else None,
            **({"deletions": self.deletions} if self.deletions is not None else {}),
        }


class HasId(Protocol):
    @property
    def recording_id(self) -> str: ...


T = TypeVar("T", bound=HasId)


class StopFlag(Protocol):
    """What tells a batch to stop taking work (a ``threading.Event``)."""

    def is_set(self) -> bool: ...


class Executor(Protocol):
    """Where the work of a batch runs: ``submit(fn, item)`` returns a
    ``concurrent.futures.Future`` of its Outcome. The local thread pool
    (:func:`local_executor`) is one; a cluster's client behind the same two methods another.
    What is submitted never needs the catalog: the driver alone reads and writes it."""

    def submit(self, fn: Callable[[T], Outcome], item: T, /) -> Future[Outcome]: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


def local_executor(workers: int) -> Executor:
    """``workers`` threads in this process."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="archive")


def first_seen(items: Iterable[T | Outcome]) -> Iterator[T | Outcome]:
    """Each recording id once, where it first came: the one place a run drops the ids its
    units share (a remembered id listed again in the overlap, an id named twice)."""
    seen: set[str] = set()
    for item in items:
        if item.recording_id not in seen:
            seen.add(item.recording_id)
            yield item


class _NotStarted(Exception):
    """A queued recording the stop reached before a worker did: it was never touched."""


class Tally(Generic[T]):
    """How the driver takes in each Outcome, wherever it was made: ``settle`` it (remember it;
    a FatalError there stops the run and leaves it unremembered), count and log it, tell
    ``on_outcome``, and stop the run after ``max_destination_failures`` consecutive failures
    of the destination itself. Used on the driver's thread only."""

    def __init__(
        self,
        result: RunResult,
        settle: Callable[[Outcome, T | None], Outcome] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        max_destination_failures: int = 2,
    ) -> None:
        self.result = result
        self._settle = settle
        self._on_outcome = on_outcome
        self._max_down = max_destination_failures
        self._down_in_a_row = 0

    def record(self, outcome: Outcome, item: T | None) -> None:
        result = self.result
        if self._settle is not None:
            try:
                outcome = self._settle(outcome, item)
            except FatalError as exc:  # the catalog is gone: what happened cannot be remembered
                result.fatal = result.fatal or str(exc)
                outcome = dataclasses.replace(outcome, remembered=False)
        result.add(outcome)
        _log_outcome(outcome)
        if self._on_outcome:
            try:
                self._on_outcome(outcome)
            except FatalError as exc:  # finishing a window needs the catalog, which is gone
                result.fatal = result.fatal or str(exc)
        if outcome.destination_down:
            self._down_in_a_row += 1
            if self._down_in_a_row >= self._max_down and not result.fatal:
                result.fatal = (
                    f"the destination failed {self._down_in_a_row} times in a row, last: {outcome.error}; "
                    "stopping (those recordings are remembered and retried next run, with no attempt "
                    "counted against them)"
                )
        elif outcome.status in ("archived", "skipped"):
            self._down_in_a_row = 0


def run_batch(
    items: Iterable[T | Outcome],
    work: Callable[[T], Outcome],
    result: RunResult,
    *,
    concurrency: int,
    executor: Executor | None = None,
    triage: Callable[[T], Outcome | None] | None = None,
    settle: Callable[[Outcome, T | None], Outcome] | None = None,
    limit: int | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    max_destination_failures: int = 2,
    stop: StopFlag | None = None,
) -> RunResult:
    """Archive ``items`` (each id once) and count what happened, on the calling thread (the
    driver) except for ``work``, which runs on ``executor`` (by default ``concurrency``
    threads), at most ``2 * concurrency`` in flight so a long listing never piles up in memory.

    For each item, on the driver: an Outcome the listing made itself (a record it could not
    parse, a get of an unknown id) goes straight to ``settle``; a recording goes to ``triage``
    first (what the catalog knows decides it without work), and only when that says nothing to
    ``work``. Every Outcome then goes through ``settle(outcome, item)`` (which remembers it;
    a FatalError there stops the run and leaves the outcome unremembered) before it is counted
    and given to ``on_outcome``.

    The run stops taking new work (running work finishes) and ``result.fatal`` says why when
    the listing, ``settle`` or a worker raises FatalError, when the listing fails in any other
    way, or after ``max_destination_failures`` consecutive failures of the destination itself.

    Once ``stop`` is set the run takes no new item, recordings already being processed
    finish, and queued ones are handed back untouched (not counted as listed, so their
    window stays unfinished and the next run takes them).
    """
    tally: Tally[T] = Tally(result, settle, on_outcome, max_destination_failures)
    record = tally.record

    in_flight: dict[Future[Outcome], T] = {}

    def drain(block_until: int) -> None:
        while len(in_flight) > block_until:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in done:
                item = in_flight.pop(fut)
                exc = fut.exception()
                if isinstance(exc, _NotStarted):
                    result.listed -= 1
                elif isinstance(exc, FatalError):
                    result.fatal = result.fatal or str(exc)
                elif exc is not None:  # a bug outside work's own guard: fail it, window unfinished
                    rid = item.recording_id
                    log.error("internal error on %s: %r", rid, exc, exc_info=exc)
                    outcome = Outcome(rid, "failed", stage="internal", error=f"internal error: {exc!r}")
                    record(dataclasses.replace(outcome, remembered=False), None)
                else:
                    record(fut.result(), item)

    def stopping() -> bool:
        return stop is not None and stop.is_set()

    def guarded(item: T) -> Outcome:  # on a worker: a stop may have come while it was queued
        if stopping():
            raise _NotStarted
        return work(item)

    pool = executor or local_executor(concurrency)
    try:
        iterator = iter(first_seen(items))
        # Checked before each item is asked for: a stopped run does not list further.
        while not stopping():
            item = next(iterator, None)
            if item is None:
                break
            if result.fatal or (limit is not None and result.listed >= limit):
                break
            result.listed += 1
            if isinstance(item, Outcome):
                record(item, None)
                continue
            try:
                early = triage(item) if triage else None
            except RecordingError as exc:  # an unsafe id: refused before anything is done
                early = Outcome(item.recording_id, "failed", stage=exc.stage, error=str(exc))
            if early is not None:
                record(early, item)
                continue
            in_flight[pool.submit(guarded, item)] = item
            drain(2 * concurrency)
    except FatalError as exc:
        result.fatal = result.fatal or str(exc)
    except ArchiverError as exc:
        result.fatal = result.fatal or f"listing failed: {exc}"
    except Exception as exc:  # a bug in a listing: stop cleanly, report, never a traceback
        log.error("internal error while listing: %r", exc, exc_info=exc)
        result.fatal = result.fatal or f"internal error while listing: {exc!r}"
    finally:
        drain(0)
        if executor is None:
            pool.shutdown()
    result.finished_at = datetime.now(UTC)
    return result


def _log_outcome(outcome: Outcome) -> None:
    extra: dict[str, Any] = {"recording_id": outcome.recording_id, "status": outcome.status}
    if outcome.status == "failed":
        log.error("failed %s at %s: %s", outcome.recording_id, outcome.stage, outcome.error, extra=extra)
    elif outcome.status == "unavailable":
        if outcome.stage == KNOWN:
            log.info("unavailable %s (known): %s", outcome.recording_id, outcome.error, extra=extra)
        else:
            log.warning("unavailable %s: %s", outcome.recording_id, outcome.error, extra=extra)
    elif outcome.status == "pending":
        log.info("pending %s: %s", outcome.recording_id, outcome.error, extra=extra)
    else:
        extra["bytes"] = outcome.bytes_downloaded
        log.info("%s %s", outcome.status, outcome.recording_id, extra=extra)


class GroupTracker:
    """Calls ``done(group)`` once a group (a listing window) is closed (its listing ended)
    and every recording listed in it has a remembered outcome. A group whose listing ended
    early (never closed) or one of whose outcomes the catalog could not be told (spoiled) is
    never done in this run. Used from the runner's thread only."""

    def __init__(self, done: Callable[[Any], None] | None = None) -> None:
        self._done = done
        self._open: dict[Any, set[str]] = {}
        self._closed: set[Any] = set()
        self._spoiled: set[Any] = set()
        self._group_of: dict[str, Any] = {}
        # Outcomes that came before their id was listed (a remembered id retried or reported
        # first, then listed again in the overlap): the runner will not process it twice.
        self._settled_first: dict[str, bool] = {}
        self.finished: set[Any] = set()
        self.gaps: list[str] = []  # why a group's listing ended early, one line each

    def add(self, group: Any, recording_id: str) -> None:
        if recording_id in self._group_of:  # listed twice: it counts where it came first
            return
        if recording_id in self._settled_first:  # its outcome is in: nothing to wait for
            if not self._settled_first[recording_id]:
                self._spoiled.add(group)
            self._open.setdefault(group, set())
            return
        self._group_of[recording_id] = group
        self._open.setdefault(group, set()).add(recording_id)

    def listed_completely(self, group: Any) -> bool:
        """Whether the group's listing ended completely (it was closed), done or not."""
        return group in self._closed or group in self.finished

    def close(self, group: Any) -> None:
        self._closed.add(group)
        self._open.setdefault(group, set())
        self._maybe_done(group)

    def completed(self, outcome: Outcome) -> None:
        group = self._group_of.get(outcome.recording_id)
        if group is None:
            self._settled_first[outcome.recording_id] = outcome.remembered
        else:
            if not outcome.remembered:
                self._spoiled.add(group)
            self._open[group].discard(outcome.recording_id)
            self._maybe_done(group)

    def _maybe_done(self, group: Any) -> None:
        if group in self._closed and not self._open.get(group) and group not in self._spoiled:
            self._closed.discard(group)
            self._open.pop(group, None)
            self.finished.add(group)
            if self._done:
                self._done(group)
