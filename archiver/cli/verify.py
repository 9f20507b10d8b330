"""``archiver verify``: prove the archive is unaltered."""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Iterable

import click

from archiver import api
from archiver.cli import wiring
from archiver.cli.options import dest_option, exit_codes, json_option, nothing_selected, selection_options
from archiver.cli.output import current_redactor, echo
from archiver.cli.outputs import check_output_path, print_json, take_stdout_for_json, write_report
from archiver.compliance.verify import Finding, VerifyResult
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
@json_option
@click.pass_context
@exit_codes
def verify(
    ctx: click.Context,
    dest: str | None,
    selection: Selection,
    workers: int,
    report: str | None,
    as_json: bool,
) -> None:
    """Re-read archived files, recompute SHA-256 and size, compare with the sidecars.

    Reports each altered, missing and orphaned object (a file no sidecar lists), each
    unreadable sidecar (not one of ours in shape) and each unsafe one (a key or id in it that
    would reach outside the archive) by recording id and key, and exits 1 on any finding.
    Orphans are looked for when no selection option narrows the check. It ends with the
    commands that repair what it found ("repair: ...").

    \b
    Example:
      archiver verify --dest s3://acme-calls/recordings --report verify.json
    """
    settings = wiring.load(ctx, {"archive.dest": dest})
    take_stdout_for_json(as_json, report)
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
    dest_url = wiring.build_storage(settings).url
    fixes = repairs(result.findings, dest_url)
    if report:
        write_report(report, current_redactor().doc(result.report() | {"dest": dest_url}))
    counts = result.report()["counts"]
    echo(
        f"recordings={result.recordings} files={result.files_checked} altered={counts.get('altered', 0)} "
        f"missing={counts.get('missing', 0)} orphaned={counts.get('orphaned', 0)} "
        f"unreadable={counts.get('unreadable', 0)} unsafe={counts.get('unsafe', 0)}"
        + ("" if result.orphans_checked else " (orphans not checked)")
    )
    for line in fixes:
        echo(f"repair: {line}")
    if as_json:
        print_json("verify", result.report() | {"dest": dest_url, "repairs": fixes})
    raise SystemExit(ExitCode.FAILED if result.findings else ExitCode.OK)


def repairs(findings: Iterable[Finding], dest: str) -> list[str]:
    """What to run (or do) about each kind of finding, one line each.

    An original altered or missing is archived again from the provider (``fetch --force``,
    which works while the provider still has the recording); a rendition is encoded again from
    the original (``transcode --force``, narrowed to the recording's call). A sidecar that
    cannot be used, or an object no sidecar lists, has no command that knows what it should
    be: those lines say so."""
    originals: dict[str, list[str]] = {}
    renditions: dict[tuple[str, str], None] = {}
    other: dict[str, list[str]] = {}
    for f in findings:
        if f.kind in ("altered", "missing") and f.recording_id and f.provider:
            if f.profile is None:
                originals.setdefault(f.provider, [])
                if f.recording_id not in originals[f.provider]:
                    originals[f.provider].append(f.recording_id)
                continue
            if f.call_id:
                renditions[(f.profile, f.call_id)] = None
                continue
        other.setdefault(f.kind, []).append(f.key)
    lines = [
        shlex.join(["archiver", "fetch", "--provider", provider, "--dest", dest, "--force", *ids])
        + "   # archives them again from the provider (add --transcode PROFILE for their renditions)"
        for provider, ids in originals.items()
    ]
    lines += [
        shlex.join(
            ["archiver", "transcode", "--dest", dest, "--profile", profile, "--force", "--call-id", call]
        )
        for profile, call in renditions
    ]
    for kind, keys in other.items():
        what = "object(s) no sidecar lists" if kind == "orphaned" else f"{kind} file(s) or sidecar(s)"
        lines.append(
            f"{len(keys)} {what} ({keys[0]}{', ...' if len(keys) > 1 else ''}): no command knows what "
            "they should hold; restore them from a backup or remove them, then run "
            + shlex.join(["archiver", "verify", "--dest", dest])
        )
    return lines
