"""What ``backfill`` and ``fetch`` share: run the pipeline over a stream of recordings."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

from archiver.cli import wiring
from archiver.errors import FatalError, RecordingError
from archiver.models import Outcome, Recording
from archiver.pipeline import Deps, plan_one, process_one, sidecar_key
from archiver.runner import RunResult, run_batch


def archive(
    ctx: click.Context,
    command: str,
    opts: dict[str, Any],
    items: Callable[[Deps], Iterable[Recording | Outcome]],
) -> None:
    """Load settings, wire a session, archive ``items(deps)`` (or plan them with --dry-run),
    report and exit."""
    flags = {
        "archive.dest": opts["dest"],
        "archive.layout": opts["layout"],
        "archive.concurrency": opts["concurrency"],
        **wiring.s3_flags(opts["storage_class"], opts["sse"], opts["sse_kms_key_id"]),
    }
    settings = wiring.load(ctx, flags)
    provider_name = opts["provider"]
    with wiring.archive_session(
        settings, provider_name, force=opts["force"], dry_run=opts["dry_run"]
    ) as deps:
        result = RunResult(
            command=command, provider=provider_name, account=deps.provider.account, dest=deps.storage.url
        )
        if opts["dry_run"]:
            dry_run(items(deps), deps, result, opts["limit"])
        else:
            run_batch(
                items(deps),
                lambda rec: process_one(rec, deps),
                result,
                concurrency=settings.archive.concurrency,
                limit=opts["limit"],
            )
    wiring.finish(result, opts["report"])


def dry_run(items: Iterable[Recording | Outcome], deps: Deps, result: RunResult, limit: int | None) -> None:
    """Print what a real run would do; write nothing."""
    seen: set[str] = set()
    to_archive = 0
    try:
        for item in items:
            if limit is not None and result.listed >= limit:
                break
            if item.recording_id in seen:
                continue
            seen.add(item.recording_id)
            result.listed += 1
            if isinstance(item, Outcome):
                result.add(item)
                continue
            try:
                outcome = plan_one(item, deps)
                key = sidecar_key(item, deps.layout) if outcome is None else None
            except RecordingError as exc:
                outcome = Outcome(item.recording_id, "failed", stage=exc.stage, error=str(exc))
            if outcome is None:
                to_archive += 1
                click.echo(f"would archive {item.recording_id} -> {key}")
            else:
                result.add(outcome)
                click.echo(
                    f"{outcome.status} {item.recording_id}" + (f": {outcome.error}" if outcome.error else "")
                )
    except FatalError as exc:
        result.fatal = str(exc)
    click.echo(f"dry run: {to_archive} recording(s) would be archived; nothing was written")
