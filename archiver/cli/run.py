"""``archiver run``: the nightly incremental archive."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import click

from archiver.cli.archive import Job, archive, retry_remembered
from archiver.cli.options import archive_options, exit_codes
from archiver.config import Settings
from archiver.errors import ConfigError
from archiver.models import Outcome, Recording
from archiver.pipeline import Deps
from archiver.runner import RunResult
from archiver.timeutil import iso_z, parse_duration, parse_when, utcnow, windows

log = logging.getLogger("archiver.run")
LIST_WINDOW = timedelta(days=1)


@click.command()
@click.option("--since", help="Where to start when there is no watermark yet (the first run).")
@click.option("--overlap", help="How far before the watermark to list again (default 2h).")
@archive_options
@click.pass_context
@exit_codes
def run(ctx: click.Context, since: str | None, overlap: str | None, **opts: Any) -> None:
    """Archive what the provider added since the last run (for cron).

    Lists from this provider account + destination's watermark minus --overlap to now, retries
    pending and failed recordings by id, and moves the watermark to this run's start unless
    the run was aborted. The first run needs --since.

    \b
    Example (crontab):
      15 2 * * *  archiver -q run --provider plivo --dest s3://acme-calls/recordings \\
                    --metrics-file /var/lib/node_exporter/archiver.prom
    """
    now = utcnow()
    given = parse_when(since, now=now) if since else None

    def make_job(deps: Deps, settings: Settings) -> Job:
        mark = deps.catalog.watermark(deps.scope)
        if given is None and mark is None:
            raise ConfigError(
                f"no watermark yet for {deps.scope.provider} account {deps.scope.account} into "
                f"{deps.scope.dest}: the first run needs --since (for example --since -7d)"
            )
        back = parse_duration(settings.archive.overlap)
        if given is not None:
            start = given
        else:
            assert mark is not None
            start = mark - back
        if start >= now:
            raise ConfigError(f"--since {since} is in the future")
        log.info(
            "listing %s to %s (watermark %s, overlap %s)",
            iso_z(start),
            iso_z(now),
            iso_z(mark) or "none",
            back,
        )

        def items() -> Iterator[Recording | Outcome]:
            yield from retry_remembered(deps, deps.catalog.unsettled(deps.scope, deps.max_failures))
            provider = deps.provider
            ranges = windows(start, now, LIST_WINDOW) if provider.server_side_date_filter else [(start, now)]
            for lo, hi in ranges:
                yield from provider.list_recordings(lo, hi)

        def after(result: RunResult) -> None:
            # Pending and failed recordings are remembered and retried by id, so the
            # watermark can move to the (frozen) end of what was listed.
            deps.catalog.set_watermark(deps.scope, now)

        return Job(items=items(), after=after)

    archive(ctx, "run", opts, make_job, {"archive.overlap": overlap})
