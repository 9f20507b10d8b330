"""``archiver backfill``: archive a historical range, window by window, resumable."""

from __future__ import annotations

from typing import Any

import click

from archiver import api
from archiver.api import Hooks, Options
from archiver.cli import wiring
from archiver.cli.archive import archive
from archiver.cli.options import archive_options, executor_option, exit_codes, scheduler_option
from archiver.config import Settings, config_path_from, environ
from archiver.errors import ConfigError
from archiver.jobs import SHARD_NEEDS_DATES, Shard
from archiver.runner import RunResult
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
@executor_option(
    "Where the work runs: this process's threads, or a Dask cluster (pip install 'archiver[dask]')."
)
@scheduler_option
@click.option(
    "--max-tasks-in-flight",
    type=click.IntRange(min=1),
    help="Listing windows handed to the Dask cluster at once (default: [dask] max_tasks_in_flight, 64).",
)
@click.option(
    "--shard",
    metavar="I/N",
    help="Archive only shard I of N (this share of the windows), for N hosts that split one "
    "range without a scheduler; each paces at 1/N of the provider's rate.",
)
@archive_options
@click.pass_context
@exit_codes
def backfill(
    ctx: click.Context,
    since: str,
    until: str | None,
    window: str,
    executor: str,
    scheduler: str | None,
    max_tasks_in_flight: int | None,
    shard: str | None,
    **opts: Any,
) -> None:
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
    part = Shard.parse(shard) if shard else None
    if executor == "local" and (scheduler or max_tasks_in_flight):
        raise ConfigError("--scheduler and --max-tasks-in-flight go with --executor dask")
    if executor == "dask" and (opts["limit"] is not None or opts["delete_after_archive"]):
        raise ConfigError(api.LOCAL_EXECUTOR_ONLY)
    if part is not None and opts["provider"] == "catapult":
        raise ConfigError(SHARD_NEEDS_DATES)
    g: wiring.GlobalOptions = ctx.obj

    def call(settings: Settings, options: Options, hooks: Hooks) -> RunResult:
        on = wiring.open_executor(
            executor,
            scheduler or settings.dask.scheduler,
            max_tasks_in_flight,
            settings,
            config=config_path_from(g.config, environ()),
            verbose=g.verbose,
        )
        try:
            return api.backfill(
                settings,
                opts["provider"],
                start,
                end,
                window=size,
                options=options,
                hooks=hooks,
                executor=on,
                shard=part,
            )
        finally:
            if on is not None:
                on.shutdown()

    archive(ctx, opts, call)
