"""Jobs as data: what ``run``, ``backfill`` and ``fetch`` will do, planned before any of it.

A :class:`Job` is a tuple of work units, each a plain frozen dataclass of strings, datetimes
and ints (so it can be logged, compared in a test, or shipped to another process):

- :class:`Remembered`: the recordings the catalog remembers as pending or failed, retried by
  id (and those at their retry limit, reported again);
- :class:`Window`: one listing window ``[since, until)``;
- :class:`Ids`: named recordings, fetched by id.

The planners are pure functions of their inputs (no I/O, no clock: ``now`` is passed in).
:func:`feed` turns a job into the stream of recordings the runner archives;
:func:`settle_marks` moves the watermark afterwards, only as far as the run really got.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from archiver.errors import ConfigError, ListingIncomplete, NotFoundError, RecordingError
from archiver.models import Outcome, Recording
from archiver.pipeline import Deps, given_up
from archiver.prefetch import read_ahead
from archiver.runner import GroupTracker
from archiver.timeutil import iso_z, windows

log = logging.getLogger("archiver.run")

# `run` lists in 1-day windows, so a cut-short night moves its watermark by whole days.
RUN_WINDOW = timedelta(days=1)
# The catalog knows a recording's start; Plivo windows select by add_time, which comes when
# the recording ends: a recording listed in [since, until) may have started up to a call's
# length before since. So remembered ones are picked with that much slack.
REMEMBERED_SLACK = timedelta(days=1)
# Listing windows run ahead of the one being archived (archiver.prefetch), at most this many.
LIST_AHEAD = 3


@dataclass(frozen=True)
class Remembered:
    """Retry by id what the catalog remembers as pending or failed (started in ``[since,
    until)``, or all when both are None), and report those at their retry limit."""

    since: datetime | None = None
    until: datetime | None = None
    report_given_up: bool = True


@dataclass(frozen=True)
class Window:
    """One listing window ``[since, until)``."""

    since: datetime
    until: datetime


@dataclass(frozen=True)
class Ids:
    """Named recordings, fetched by id."""

    recording_ids: tuple[str, ...]


Unit = Remembered | Window | Ids


SHARD_NEEDS_DATES = (
    "--shard needs a provider that lists by date (Catapult lists one walk for the whole "
    "range; its 1 request/s per account is the bound anyway: run it on one host)"
)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``--shard I/N``, 1-based): a deterministic share of the
    windows (by the window's position on the calendar, so every host agrees whatever it
    lists), so N hosts with the same range and window size cover it exactly once without
    talking to each other. Each retries by id what its own catalog remembers (what it listed
    and could not archive): no other shard ever hears of those."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, sep, count = text.partition("/")
        try:
            shard = cls(int(index), int(count))
        except ValueError:
            shard = None
        if not sep or shard is None or not 1 <= shard.index <= shard.count:
            raise ConfigError(f"bad --shard {text!r}: use I/N with 1 <= I <= N, for example 1/4")
        return shard

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def has_window(self, window: Window, size: timedelta) -> bool:
        return int(window.since.timestamp() // size.total_seconds()) % self.count == self.index - 1


@dataclass(frozen=True)
class Watermark:
    """What ``run`` moves afterwards: the mark it started from (None on a first run), where it
    started listing, and the overlap it listed again."""

    previous: datetime | None
    start: datetime
    overlap: timedelta


@dataclass(frozen=True)
class Job:
    """A planned command: its units in order, and what it remembers when they are settled."""

    command: str
    units: tuple[Unit, ...]
    finish_windows: bool = False  # backfill: remember each settled window in the catalog
    skip_finished: bool = False  # backfill: windows already finished are not listed again
    watermark: Watermark | None = None  # run: move the watermark past settled windows

    @property
    def windows(self) -> tuple[Window, ...]:
        return tuple(u for u in self.units if isinstance(u, Window))


def plan_backfill(
    since: datetime,
    until: datetime,
    size: timedelta,
    *,
    date_filter: bool,
    revisit: bool,
    shard: Shard | None = None,
) -> Job:
    """``[since, until)`` in windows of ``size`` (one window when the provider cannot filter by
    date: Catapult's one walk serves the whole range). ``revisit`` (--force, --dry-run) lists
    finished windows too and does not report given-up recordings. A ``shard`` keeps its share
    of the windows and of the remembered ids."""
    if shard is not None and not date_filter:
        raise ConfigError(SHARD_NEEDS_DATES)
    lo = since - REMEMBERED_SLACK if date_filter else since
    ranges = list(windows(since, until, size)) if date_filter else [(since, until)]
    mine = [Window(a, b) for a, b in ranges]
    if shard is not None:
        mine = [w for w in mine if shard.has_window(w, size)]
    return Job(
        "backfill",
        (Remembered(lo, until, report_given_up=not revisit), *mine),
        finish_windows=True,
        skip_finished=not revisit,
    )


def plan_run(
    *,
    mark: datetime | None,
    since: datetime | None,
    now: datetime,
    overlap: timedelta,
    date_filter: bool,
    scope: str,
) -> Job:
    """From the watermark minus ``overlap`` (or ``since`` on a first run) to ``now``, in 1-day
    windows where the provider filters by date. ``since`` is ignored once there is a mark."""
    if since is not None and since >= now:
        raise ConfigError(f"--since {iso_z(since)} is in the future")
    if mark is None:
        if since is None:
            raise ConfigError(
                f"no watermark yet for {scope}: the first run needs --since (for example --since -7d)"
            )
        start = since
    else:
        start = mark - overlap
        if start >= now:  # the clock went back, or the catalog came from another machine
            raise ConfigError(f"the watermark {iso_z(mark)} is after now ({iso_z(now)}): check the clock")
    ranges = list(windows(start, now, RUN_WINDOW)) if date_filter else [(start, now)]
    return Job(
        "run",
        (Remembered(), *(Window(a, b) for a, b in ranges)),
        watermark=Watermark(mark, start, overlap),
    )


def plan_fetch(recording_ids: tuple[str, ...]) -> Job:
    """The named recordings, in the order given (the run takes each id once:
    :func:`archiver.runner.first_seen`)."""
    return Job("fetch", (Ids(tuple(recording_ids)),))


# --- executing a job (I/O: the provider and the catalog) ----------------------------------


def feed(job: Job, deps: Deps, tracker: GroupTracker) -> Iterator[Recording | Outcome]:
    """The recordings (and listing-made Outcomes) the runner archives for ``job``, unit by unit;
    each listing window is added to ``tracker``, closed only when its listing ended completely."""
    catalog, scope = deps.catalog, deps.scope
    todo = {
        w for w in job.windows if not (job.skip_finished and catalog.window_done(scope, w.since, w.until))
    }
    if len(todo) < len(job.windows):
        log.info(
            "%d of %d windows already finished; listing the other %d",
            len(job.windows) - len(todo),
            len(job.windows),
            len(todo),
        )
    # The next windows are listed while the current one's recordings download (paced as ever).
    listings = read_ahead(
        (
            functools.partial(deps.provider.list_recordings, w.since, w.until)
            for w in job.windows
            if w in todo
        ),
        ahead=LIST_AHEAD,
        stop=deps.stop,
    )
    for unit in job.units:
        if isinstance(unit, Remembered):
            if unit.report_given_up:
                for known in catalog.given_up(scope, deps.max_failures, unit.since, unit.until):
                    yield given_up(known)
            yield from by_id(deps, remembered_ids(unit, deps))
        elif isinstance(unit, Ids):
            yield from by_id(deps, unit.recording_ids)
        elif unit in todo:
            listing = next(listings, None)
            if listing is None:  # the read-ahead ended early: the run is stopping
                return
            yield from list_window(deps, unit, tracker, listing)


def remembered_ids(unit: Remembered, deps: Deps) -> list[str]:
    """The ids the catalog remembers as pending or failed for ``unit``."""
    return deps.catalog.unsettled(deps.scope, deps.max_failures, unit.since, unit.until)


def by_id(deps: Deps, recording_ids: list[str] | tuple[str, ...]) -> Iterator[Recording | Outcome]:
    """Recordings fetched by id (a failed get is an Outcome, remembered by the runner). A 404
    is final: the provider has no such recording (a typo'd id, one it deleted), ``unavailable``."""
    for rid in recording_ids:
        try:
            yield deps.provider.get_recording(rid)
        except NotFoundError as exc:
            yield Outcome(rid, "unavailable", stage="get", error=str(exc))
        except RecordingError as exc:
            yield Outcome(rid, "failed", stage="get", error=str(exc))


def list_window(
    deps: Deps, window: Window, tracker: GroupTracker, listing: Iterable[Recording | Outcome] | None = None
) -> Iterator[Recording | Outcome]:
    """One listing window's recordings (``listing``, read ahead, or the provider's), each added
    to ``tracker``; the window is closed (so it can be finished) only when its listing ended
    completely."""
    if listing is None:
        listing = deps.provider.list_recordings(window.since, window.until)
    try:
        for item in listing:
            tracker.add(window, item.recording_id)
            yield item
    except ListingIncomplete as exc:
        gap = (
            f"listing {iso_z(window.since)}..{iso_z(window.until)} ended early: {exc}; "
            "the window stays unfinished"
        )
        log.warning("%s", gap)
        tracker.gaps.append(gap)
        return
    tracker.close(window)


def settle_marks(job: Job, deps: Deps, tracker: GroupTracker, now: datetime) -> None:
    """After the batch: move ``run``'s watermark past the windows that are settled (every
    recording listed in them archived, or pending, failed or unavailable and remembered) and
    every window before them, so a limited, cut-short or aborted run moves it only as far as
    it really got. Backfill windows are finished as they settle (the tracker's callback)."""
    mark = job.watermark
    if mark is None:
        return
    reached = watermark_after(job.windows, tracker.finished)
    if reached is not None and (mark.previous is None or reached > mark.previous):
        deps.catalog.set_watermark(deps.scope, reached)
    elif mark.previous is None:
        # A first run that finished no window: the next one starts where this one did.
        deps.catalog.set_watermark(deps.scope, mark.start + mark.overlap)
    if reached != now:
        log.warning(
            "listed up to %s of %s: the next run lists the rest", iso_z(reached or mark.start), iso_z(now)
        )


def watermark_after(ranges: tuple[Window, ...], finished: set[object]) -> datetime | None:
    """The end of the longest run of finished windows from the first; None when the first is
    not finished."""
    reached = None
    for window in ranges:
        if window not in finished:
            break
        reached = window.until
    return reached
