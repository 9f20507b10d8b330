"""``archiver transcode``: add a rendition to recordings already archived."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import click

from archiver.cli import wiring
from archiver.cli.options import complete_profile, dest_option, exit_codes, selection_options
from archiver.cli.outputs import check_output_path
from archiver.cli.progress import RunProgress
from archiver.errors import SidecarError
from archiver.media.retranscode import RetranscodeDeps, add_rendition
from archiver.models import Outcome
from archiver.profiles import pick_profiles
from archiver.runner import RunResult, run_batch
from archiver.sidecars import Selection, selected


@click.command()
@dest_option
@click.option(
    "--profile",
    "profile_name",
    required=True,
    shell_complete=complete_profile,
    help="Profile of the rendition to add.",
)
@selection_options
@click.option("--force", is_flag=True, help="Encode again where the rendition exists already.")
@click.option(
    "--transcode-workers", type=click.IntRange(1, 64), help="Parallel encodes (default: CPU count)."
)
@click.option("--report", type=click.Path(dir_okay=False), help="Write a JSON run report here ('-': stdout).")
@click.pass_context
@exit_codes
def transcode(
    ctx: click.Context,
    dest: str | None,
    profile_name: str,
    selection: Selection,
    force: bool,
    transcode_workers: int | None,
    report: str | None,
) -> None:
    """Add a rendition to archived recordings, from the stored originals.

    Reads the archive's sidecars and originals only: the provider is never contacted. Each
    sidecar is rewritten atomically once its new rendition is stored.

    \b
    Example:
      archiver transcode --dest s3://acme-calls/recordings --profile flac --since 2024-01-01
    """
    settings = wiring.load(ctx, {"archive.dest": dest, "transcode.workers": transcode_workers})
    check_output_path("--report", report, dash=True)  # before hours of encoding
    (profile,) = pick_profiles((profile_name,), settings.profiles)
    storage = wiring.build_storage(settings)
    try:
        storage.check()
        deps = RetranscodeDeps(storage, wiring.build_transcoder(settings), profile, force)
        result = RunResult(
            command="transcode",
            provider=selection.provider or "*",
            account="*",
            dest=storage.url,
            started_at=datetime.now(UTC),
        )
        with RunProgress(result, enabled=not ctx.obj.quiet) as progress:
            run_batch(
                (
                    # An unusable sidecar fails under its own key: it may name no id, or a
                    # good recording's (run_batch would drop the second of two equal ids).
                    Outcome(item.key, "failed", stage=item.stage, error=str(item))
                    if isinstance(item, SidecarError)
                    else item
                    for item in selected(storage, selection)
                ),
                lambda item: add_rendition(item, deps),
                result,
                concurrency=settings.transcode.workers or os.cpu_count() or 2,
                on_outcome=lambda _: progress.update(result),
            )
    finally:
        storage.close()
    wiring.finish(result, report)
