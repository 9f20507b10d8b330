"""``archiver export``: a compliance export an auditor can verify with standard tools."""

from __future__ import annotations

import shlex
import sys

import click

from archiver import api
from archiver.cli import wiring
from archiver.cli.options import dest_option, exit_codes, json_option, nothing_selected, selection_options
from archiver.cli.output import echo
from archiver.cli.outputs import print_json, take_stdout_for_json
from archiver.errors import ExitCode
from archiver.sidecars import Selection


@click.command()
@dest_option
@click.option("--out", required=True, help="A new folder, a new .zip file, or an empty s3://bucket/prefix.")
@selection_options
@click.option(
    "--format",
    "export_format",
    type=click.Choice(api.EXPORT_FORMATS),
    default="plain",
    show_default=True,
    help="plain: the export as it is; bagit: a BagIt 1.0 bag of it (payload under data/).",
)
@click.option("--with-renditions", is_flag=True, help="Export renditions too, not only the originals.")
@click.option(
    "--mask-numbers", is_flag=True, help="Mask phone numbers in the manifests (last 4 digits kept)."
)
@json_option
@click.pass_context
@exit_codes
def export(
    ctx: click.Context,
    dest: str | None,
    out: str,
    selection: Selection,
    with_renditions: bool,
    mask_numbers: bool,
    export_format: str,
    as_json: bool,
) -> None:
    """Export selected recordings with manifests, SHA256SUMS and a chain-of-custody record.

    Every file is re-hashed while it is copied and compared with its sidecar; any mismatch
    abandons the export (nothing is left at --out) and names the recording. A sidecar that is
    unreadable or unsafe (a key reaching outside) is left out, named on stderr and in
    CUSTODY.json, and the export exits 1. In the result, `sha256sum -c SHA256SUMS` checks
    everything, and index.html is an offline viewer with a player per file. With
    --format bagit the export is a BagIt bag (`bagit.py --validate` accepts it; in a .zip,
    one folder named like the file), its Source-Organization from [export]
    source_organization in the config.

    \b
    Example:
      archiver export --dest s3://acme-calls/recordings --since 2024-01-01 --until 2024-02-01 \\
          --number +14155550100 --out ./audit-2024-01.zip
      archiver export --dest ./archive --since -30d --format bagit --out ./audit-bag
    """
    settings = wiring.load(ctx, {"archive.dest": dest})
    take_stdout_for_json(as_json)
    if export_format == "bagit" and not settings.export.source_organization:
        echo("note: no [export] source_organization in the config: bag-info.txt names no holder", err=True)
    # An ExportError (a copy does not match its sidecar) exits 1 through exit_codes.
    result = api.export(
        settings,
        out,
        selection,
        with_renditions=with_renditions,
        mask_numbers=mask_numbers,
        command_line=shlex.join(["archiver", *sys.argv[1:]]),
        export_format=export_format,
    )
    if not result.recordings and not result.excluded:
        echo(f"export: {nothing_selected(selection)}", err=True)
    for x in result.excluded:
        who = f" (recording {x['recording_id']})" if x["recording_id"] else ""
        echo(f"error: left out {x['kind']} sidecar {x['sidecar']}{who}: {x['detail']}", err=True)
    if result.custody_error:
        echo(
            f"error: the export is complete, but its custody event was not logged: {result.custody_error}",
            err=True,
        )
    echo(
        f"exported recordings={result.recordings} files={result.files} bytes={result.bytes} "
        f"excluded={len(result.excluded)} out={out}"
    )
    if as_json:
        print_json(
            "export",
            {
                "out": out,
                "format": export_format,
                "counts": {
                    "recordings": result.recordings,
                    "files": result.files,
                    "bytes": result.bytes,
                    "excluded": len(result.excluded),
                },
                "manifest_sha256": result.manifest_sha256,
                "excluded": list(result.excluded),
                "export_id": result.export_id,
                "custody_error": result.custody_error,
            },
        )
    raise SystemExit(ExitCode.FAILED if result.excluded or result.custody_error else ExitCode.OK)
