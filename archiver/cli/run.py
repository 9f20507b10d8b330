"""``archiver run``: the nightly incremental archive."""

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
from archiver.runner import GroupTracker, RunResult
from archiver.timeutil import iso_z, parse_duration, parse_when, utcnow, windows

log = logging.getLogger("archiver.run")
LIST_WINDOW = timedelta(days=1)


@click.command()
@click.option(
    "--since",
    help="Where to start when there is no watermark yet (the first run); ignored, with a log line, "
    "once there is one, so a crontab can always pass it.",
)
@click.option("--overlap", help="How far before the watermark to list again (default 2h).")
@archive_options
@click.pass_context
@exit_codes
def run(ctx: click.Context, since: str | None, overlap: str | None, **opts: Any) -> None:
    """Archive what the provider added since the last run (for cron).

    Lists from this provider account + destination's watermark minus --overlap to now, retries
    pending and failed recordings by id, and moves the watermark to this run's start unless
    the run was aborted. The first run needs --since; later runs ignore it (use backfill for
    an older range).

    \b
    Example (crontab):
      15 2 * * *  archiver -q run --provider plivo --dest s3://acme-calls/recordings \\
                    --since -7d --metrics-file /var/lib/node_exporter/archiver.prom
    """
    now = utcnow()
    given = parse_when(since, now=now) if since else None
    if given is not None and given >= now:
        raise ConfigError(f"--since {since} is in the future")

    def make_job(deps: Deps, settings: Settings) -> Job:
        mark = deps.catalog.watermark(deps.scope)
        if given is None and mark is None:
            raise ConfigError(
                f"no watermark yet for {deps.scope.provider} account {deps.scope.account} into "
                f"{deps.scope.dest}: the first run needs --since (for example --since -7d)"
            )
        back = parse_duration(settings.archive.overlap)
        if mark is None:
            assert given is not None
            start = given
        else:
            # The watermark wins: --since -7d in a crontab must not list a week every night.
            start = mark - back
            if given is not None:
                log.info(
                    "--since %s ignored: this provider account + destination has a watermark (%s); "
                    "use backfill for an older range",
                    since,
                    iso_z(mark),
                )
            if start >= now:  # the clock went back, or the catalog came from another machine
                raise ConfigError(f"the watermark {iso_z(mark)} is after now ({iso_z(now)}): check the clock")
        log.info(
            "listing %s to %s (watermark %s, overlap %s)",
            iso_z(start),
            iso_z(now),
            iso_z(mark) or "none",
            back,
        )

        provider = deps.provider
        ranges = (
            list(windows(start, now, LIST_WINDOW)) if provider.server_side_date_filter else [(start, now)]
        )
        tracker = GroupTracker()

        def items() -> Iterator[Recording | Outcome]:
            # Given up: reported on every run until someone looks (--force tries them again).
            for known in deps.catalog.given_up(deps.scope, deps.max_failures):
                yield given_up(known)
            yield from retry_remembered(deps, deps.catalog.unsettled(deps.scope, deps.max_failures))
            for w in ranges:
                yield from list_window(deps, w, tracker)

        def after(result: RunResult) -> None:
            # The watermark moves past a window only when every recording listed in it is
            # archived, or pending or failed and remembered (retried by id next run), and every
            # window before it is too: a limited, cut-short or aborted run moves it only as far
            # as it really got.
            reached = watermark_after(ranges, tracker.finished)
            if reached is not None and (mark is None or reached > mark):
                deps.catalog.set_watermark(deps.scope, reached)
            elif mark is None:
                # A first run that finished no window: the next one starts where this one did.
                deps.catalog.set_watermark(deps.scope, start + back)
            if reached != now:
                log.warning(
                    "listed up to %s of %s: the next run lists the rest",
                    iso_z(reached or start),
                    iso_z(now),
                )

        return Job(items=items(), on_outcome=tracker.completed, after=after, tracker=tracker)

    archive(ctx, "run", opts, make_job, {"archive.overlap": overlap})


def watermark_after(
    ranges: list[tuple[datetime, datetime]], finished: set[tuple[datetime, datetime]]
) -> datetime | None:
    """The end of the longest run of finished windows from the first; None when the first is
    not finished."""
    reached = None
    for window in ranges:
        if window not in finished:
            break
        reached = window[1]
    return reached
