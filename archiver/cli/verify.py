"""``archiver verify``: prove the archive is unaltered."""

from __future__ import annotations

import logging
import time

import click

from archiver import api
from archiver.cli import wiring
from archiver.cli.options import dest_option, exit_codes, nothing_selected, selection_options
from archiver.cli.output import current_redactor, echo
from archiver.cli.outputs import check_output_path, write_report
from archiver.compliance.verify import VerifyResult
from archiver.errors import ExitCode
from archiver.sidecars import Selection

log = logging.getLogger("archiver.compliance.verify")


@click.command()
@dest_option
@selection_options
@click.option(
    "--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Files read in parallel."
)
@click.option(
    "--report", type=click.Path(dir_okay=False), help="Write the findings as JSON here ('-': stdout)."
)
@click.pass_context
@exit_codes
def verify(
    ctx: click.Context, dest: str | None, selection: Selection, workers: int, report: str | None
) -> None:
    """Re-read archived files, recompute SHA-256 and size, compare with the sidecars.

    Reports each altered, missing and orphaned object (a file no sidecar lists), each
    unreadable sidecar (not one of ours in shape) and each unsafe one (a key or id in it that
    would reach outside the archive) by recording id and key, and exits 1 on any finding.
    Orphans are looked for when no selection option narrows the check.

    \b
    Example:
      archiver verify --dest s3://acme-calls/recordings --report verify.json
    """
    settings = wiring.load(ctx, {"archive.dest": dest})
    check_output_path("--report", report, dash=True)  # before reading the whole archive
    last = [time.monotonic()]

    def progress(r: VerifyResult) -> None:  # a line every 10 s on long checks
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            log.info(
                "verify: %d files, %.1f MB read, %d findings so far",
                r.files_checked,
                r.bytes_read / 1e6,
                len(r.findings),
            )

    result = api.verify(settings, selection, workers=workers, on_file=progress)
    if not result.recordings:
        echo(f"verify: {nothing_selected(selection)}", err=True)
    for f in result.findings:
        who = f" recording {f.recording_id}" if f.recording_id else ""
        echo(f"{f.kind}{who}: {f.key}: {f.detail}", err=True)
    if report:
        write_report(
            report, current_redactor().doc(result.report() | {"dest": wiring.build_storage(settings).url})
        )
    counts = result.report()["counts"]
    echo(
        f"recordings={result.recordings} files={result.files_checked} altered={counts.get('altered', 0)} "
        f"missing={counts.get('missing', 0)} orphaned={counts.get('orphaned', 0)} "
        f"unreadable={counts.get('unreadable', 0)} unsafe={counts.get('unsafe', 0)}"
        + ("" if result.orphans_checked else " (orphans not checked)")
    )
    raise SystemExit(ExitCode.FAILED if result.findings else ExitCode.OK)
