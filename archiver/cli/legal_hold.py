"""``archiver legal-hold set|clear``: change the S3 legal hold of archived recordings."""

from __future__ import annotations

import click

from archiver.cli import wiring
from archiver.cli.options import dest_option, exit_codes, json_option, selection_options
from archiver.cli.output import echo
from archiver.cli.outputs import print_json, take_stdout_for_json
from archiver.compliance import custody
from archiver.errors import ArchiverError, ConfigError, ExitCode, SidecarError, StorageError
from archiver.sidecars import Selection, archived
from archiver.storage import legal_holds


@click.command("legal-hold")
@click.argument("action", type=click.Choice(["set", "clear"]))
@dest_option
@selection_options
@json_option
@click.pass_context
@exit_codes
def legal_hold(
    ctx: click.Context, action: str, dest: str | None, selection: Selection, as_json: bool
) -> None:
    """Set or clear the legal hold on every object of the selected recordings.

    The sidecar keeps what was applied at archive time; the objects carry the current state,
    and the destination's custody log an event naming the recordings changed.

    \b
    Example:
      archiver legal-hold set --dest s3://acme-calls/recordings --call-id 6bae8021-1c7d-9316
    """
    settings = wiring.load(ctx, {"archive.dest": dest})
    take_stdout_for_json(as_json)
    storage = wiring.build_storage(settings)
    holds = legal_holds(storage)
    if holds is None:
        raise ConfigError("legal holds need an s3:// destination in a bucket with Object Lock")
    recordings = objects = failed = 0
    changed: list[str] = []

    def unusable(problem: SidecarError) -> None:  # its keys cannot be trusted: left alone
        nonlocal failed
        failed += 1
        echo(f"failed: {problem}", err=True)

    try:
        storage.check()
        for item in archived(storage, selection, on_problem=unusable):
            recordings += 1
            for key in [f["key"] for f in item.doc["files"] if f.get("key")] + [item.key]:
                try:
                    holds.set_legal_hold(key, action == "set")
                    objects += 1
                except StorageError as exc:
                    failed += 1
                    echo(f"failed recording {item.recording_id}: {exc}", err=True)
            changed.append(item.recording_id)
        if recordings:
            details = {
                "hold": action,
                "selection": custody.selection_json(selection),
                "counts": {"recordings": recordings, "objects": objects, "failed": failed},
                "recording_ids": changed,
            }
            try:
                custody.log_event(storage, settings, "legal-hold", details)
            except ArchiverError as exc:
                failed += 1
                echo(f"error: the change was not added to the custody log: {exc}", err=True)
    finally:
        storage.close()
    echo(f"legal hold {action}: recordings={recordings} objects={objects} failed={failed}")
    code = ExitCode.FAILED if failed else ExitCode.OK
    if as_json:
        counts = {"recordings": recordings, "objects": objects, "failed": failed}
        print_json(
            "legal-hold",
            {"hold": action, "counts": counts, "recording_ids": changed, "exit_code": int(code)},
        )
    raise SystemExit(code)
