"""What ``run``, ``backfill`` and ``fetch`` share on the command line: settings from flags,
Ctrl-C handling, the progress bar and the printed lines around one call of :mod:`archiver.api`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import click

from archiver.api import Hooks, Options
from archiver.cli import wiring
from archiver.cli.logs import bind_run
from archiver.cli.output import echo
from archiver.cli.outputs import check_output_path
from archiver.cli.progress import RunProgress
from archiver.cli.signals import StopOnSignal
from archiver.config import Settings
from archiver.runner import RunResult

Call = Callable[[Settings, Options, Hooks], RunResult]


def archive(
    ctx: click.Context,
    opts: dict[str, Any],
    call: Call,
    extra_flags: dict[str, Any] | None = None,
    total: int | None = None,
) -> None:
    """Load settings (logging set up), check the output paths before any work, run ``call``
    (an :mod:`archiver.api` function) with the shared options, then write the report and
    metrics, print the summary and exit with the spec's code. Ctrl-C / SIGTERM stop it after
    the recordings in flight (:mod:`archiver.cli.signals`), from start to write-up. ``total``:
    how many recordings the run takes, when known before it starts (the bar's end and ETA)."""
    with StopOnSignal() as stop:
        flags = {
            **(extra_flags or {}),
            "archive.dest": opts["dest"],
            "archive.layout": opts["layout"],
            "archive.concurrency": opts["concurrency"],
            "archive.catalog": opts["catalog"],
            "transcode.workers": opts["transcode_workers"],
            "s3.storage_class": opts["storage_class"],
            "s3.sse": opts["sse"],
            "s3.sse_kms_key_id": opts["sse_kms_key_id"],
            "s3.object_lock_mode": opts["object_lock_mode"],
            "s3.retain_days": opts["retain_days"],
            "s3.legal_hold": opts["legal_hold"],
        }
        settings = wiring.load(ctx, flags)
        # Before any work: a bad path must not cost a whole run and then a traceback.
        check_output_path("--report", opts["report"], dash=True)
        check_output_path("--metrics-file", opts["metrics_file"])
        options = Options(
            force=opts["force"],
            dry_run=opts["dry_run"],
            limit=opts["limit"],
            profiles=opts["transcode_profiles"],
            keep_original=opts["keep_original"],
            delete_after_archive=opts["delete_after_archive"],
            delete_older_than_days=opts["delete_older_than_days"],
        )
        with contextlib.ExitStack() as stack:
            bars: list[RunProgress] = []

            def started(result: RunResult) -> None:
                bind_run(result.run_id, opts["provider"])
                enabled = not ctx.obj.quiet and not options.dry_run
                expected = min(total, options.limit or total) if total is not None else None
                bars.append(stack.enter_context(RunProgress(result, enabled=enabled, total=expected)))

            def progress(result: RunResult) -> None:
                for bar in bars:
                    bar.update(result)

            hooks = Hooks(
                started=started, progress=progress, say=echo, stop=stop.event, stopped_by=lambda: stop.signum
            )
            result = call(settings, options, hooks)
        wiring.finish(result, opts["report"], opts["metrics_file"], result.last_success)
