"""``archiver backfill``: archive a historical range, window by window, resumable."""

from __future__ import annotations

from typing import Any

import click

from archiver import api
from archiver.cli.archive import archive
from archiver.cli.options import archive_options, exit_codes
from archiver.errors import ConfigError
from archiver.timeutil import check_window_count, parse_duration, parse_when, utcnow


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
    archive(
        ctx,
        opts,
        lambda settings, options, hooks: api.backfill(
            settings, opts["provider"], start, end, window=size, options=options, hooks=hooks
        ),
    )
