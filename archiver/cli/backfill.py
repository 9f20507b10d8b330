"""``archiver backfill``: archive a historical range."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click

from archiver.cli.archive import archive
from archiver.cli.options import archive_options, exit_codes
from archiver.errors import ConfigError
from archiver.models import Recording
from archiver.pipeline import Deps
from archiver.timeutil import parse_duration, parse_when, windows


@click.command()
@click.option("--since", required=True, help="Start (inclusive): YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS], -7d.")
@click.option("--until", help="End (exclusive); default now. Never later than the moment the run starts.")
@click.option(
    "--window",
    default="1d",
    show_default=True,
    help="Listing window (Plivo is listed window by window, 30 days at most).",
)
@archive_options
@click.pass_context
@exit_codes
def backfill(ctx: click.Context, since: str, until: str | None, window: str, **opts: Any) -> None:
    """Archive every recording that started in [--since, --until).

    \b
    Example:
      archiver backfill --provider plivo --since 2024-01-01 --until 2024-03-01 \\
          --dest s3://acme-calls/recordings
    """
    now = datetime.now(UTC)
    start = parse_when(since, now=now)
    # The upper bound is frozen at run start: recordings that arrive while we walk the
    # listing would shift offset pages under us (PROVIDERS.md, "moving set").
    end = min(parse_when(until, now=now), now) if until else now
    if start >= end:
        raise ConfigError(f"--since ({since}) must be before --until ({until or 'now'})")
    size = parse_duration(window)

    def items(deps: Deps) -> Iterator[Recording]:
        provider = deps.provider
        ranges = windows(start, end, size) if provider.server_side_date_filter else [(start, end)]
        for lo, hi in ranges:
            yield from provider.list_recordings(lo, hi)

    archive(ctx, "backfill", opts, items)
