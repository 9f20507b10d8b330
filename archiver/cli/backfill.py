"""``archiver backfill``: archive a historical range, window by window, resumable."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import click

from archiver.cli.archive import Job, archive, list_window, retry_remembered
from archiver.cli.options import archive_options, exit_codes
from archiver.config import Settings
from archiver.errors import ConfigError
from archiver.models import Outcome, Recording
from archiver.pipeline import Deps, given_up
from archiver.runner import GroupTracker
from archiver.timeutil import check_window_count, parse_duration, parse_when, utcnow, windows

log = logging.getLogger("archiver.backfill")
REMEMBERED_SLACK = timedelta(days=1)


@click.command()
@click.option("--since", required=True, help="Start (inclusive): YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS], -7d.")
@click.option("--until", help="End (exclusive); default now. Never later than the moment the run starts.")
@click.option(
    "--window",
    default="1d",
    show_default=True,
    help="Window size: finished windows are remembered, so a rerun resumes.",
)
@archive_options
@click.pass_context
@exit_codes
def backfill(ctx: click.Context, since: str, until: str | None, window: str, **opts: Any) -> None:
    """Archive every recording that started in [--since, --until).

    The range is split into windows; each finished window is remembered in the catalog, so an
    interrupted backfill run again continues with the unfinished ones. Recordings that were
    pending or failed are retried by id.

    \b
    Example:
      archiver backfill --provider plivo --since 2024-01-01 --until 2024-03-01 \\
          --dest s3://acme-calls/recordings
    """
    now = utcnow()
    start = parse_when(since, now=now)
    # The upper bound is frozen at run start: recordings that arrive while we walk the
    # listing would shift offset pages under us (PROVIDERS.md, "moving set").
    end = min(parse_when(until, now=now), now) if until else now
    if start >= end:
        raise ConfigError(f"--since ({since}) must be before --until ({until or 'now'})")
    size = parse_duration(window)
    check_window_count(start, end, size)  # before anything starts: exit 2, nothing done

    def make_job(deps: Deps, settings: Settings) -> Job:
        tracker = GroupTracker(lambda w: deps.catalog.finish_window(deps.scope, *w))
        return Job(
            items=window_items(deps, tracker, start, end, size, opts["force"] or opts["dry_run"]),
            on_outcome=tracker.completed,
            tracker=tracker,
        )

    archive(ctx, "backfill", opts, make_job)


def window_items(
    deps: Deps, tracker: GroupTracker, start: datetime, end: datetime, size: Any, revisit: bool
) -> Iterator[Recording | Outcome]:
    """Remembered unsettled recordings first, then every unfinished window's listing. Those
    that failed too often are reported again, not retried: the range selects them, and they
    are not archived."""
    provider = deps.provider
    # The catalog knows a recording's start; Plivo windows select by add_time, which comes when
    # the recording ends: a recording listed in [start, end) may have started up to a call's
    # length before start. So the remembered ones are picked with that much slack.
    lo = start - REMEMBERED_SLACK if provider.server_side_date_filter else start
    for known in deps.catalog.given_up(deps.scope, deps.max_failures, lo, end):
        if not revisit:
            yield given_up(known)
    yield from retry_remembered(deps, deps.catalog.unsettled(deps.scope, deps.max_failures, lo, end))
    # Catapult cannot filter by date: one walk of its listing serves the whole range.
    ranges = list(windows(start, end, size)) if provider.server_side_date_filter else [(start, end)]
    todo = [w for w in ranges if revisit or not deps.catalog.window_done(deps.scope, *w)]
    if len(todo) < len(ranges):
        log.info(
            "%d of %d windows already finished; listing the other %d",
            len(ranges) - len(todo),
            len(ranges),
            len(todo),
        )
    for w in todo:
        yield from list_window(deps, w, tracker)
