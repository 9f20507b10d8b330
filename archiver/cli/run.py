"""``archiver run``: the nightly incremental archive."""

from __future__ import annotations

from typing import Any

import click

from archiver import api
from archiver.cli.archive import archive
from archiver.cli.options import archive_options, exit_codes
from archiver.errors import ConfigError
from archiver.timeutil import parse_when, utcnow


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
    pending and failed recordings by id, and moves the watermark past the windows it settled
    (a limited, cut-short or stopped run only as far as it got). The first run needs --since;
    later runs ignore it (use backfill for an older range).

    \b
    Example (crontab):
      15 2 * * *  archiver -q run --provider plivo --dest s3://acme-calls/recordings \\
                    --since -7d --metrics-file /var/lib/node_exporter/archiver.prom
    """
    now = utcnow()
    given = parse_when(since, now=now) if since else None
    if given is not None and given >= now:
        raise ConfigError(f"--since {since} is in the future")
    archive(
        ctx,
        opts,
        lambda settings, options, hooks: api.run(
            settings, opts["provider"], since=given, options=options, hooks=hooks
        ),
        {"archive.overlap": overlap},
    )
