"""``archiver verify``: prove the archive is unaltered."""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Iterable, Sequence

import click

from archiver import api
from archiver.cli import wiring
from archiver.cli.metrics import render_verify_metrics, write_metrics
from archiver.cli.options import dest_option, exit_codes, json_option, nothing_selected, selection_options
from archiver.cli.output import current_redactor, echo
from archiver.cli.outputs import check_output_path, print_json, take_stdout_for_json, write_report
from archiver.cli.wiring import GlobalOptions
from archiver.compliance.checkup import unresolved
from archiver.compliance.coverage import Sample, parse_sample
from archiver.compliance.coverage import describe as describe_coverage
from archiver.compliance.verify import Finding, VerifyResult
from archiver.errors import ConfigError, ExitCode
from archiver.sidecars import Selection
from archiver.timeutil import utcnow

log = logging.getLogger("archiver.compliance.verify")


def _sample(ctx: click.Context, param: click.Parameter, value: str | None) -> Sample | None:
    try:
        return parse_sample(value) if value is not None else None
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("bad --sample "), ctx, param) from None


@click.command()
@dest_option
@selection_options
@click.option(
    "--sample",
    callback=_sample,
    metavar="N%|N",
    help="Read only this share (10%) or number of files: failing ones, then the least recently verified.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Download missing or altered originals again from their provider, when its bytes match the sidecar.",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Files read in parallel."
)
@click.option(
    "--report", type=click.Path(dir_okay=False), help="Write the findings as JSON here ('-': stdout)."
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False),
    help="Write Prometheus metrics (findings, coverage) here (node_exporter textfile collector).",
)
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False),
    help="Catalog database that remembers each file's last verification (default as for run).",
)
@json_option
@click.pass_context
@exit_codes
def verify(
    ctx: click.Context,
    dest: str | None,
    selection: Selection,
    sample: Sample | None,
    repair: bool,
    workers: int,
    report: str | None,
    metrics_file: str | None,
    catalog: str | None,
    as_json: bool,
) -> None:
    """Re-read archived files, recompute SHA-256 and size, compare with the sidecars.

    Reports each altered, missing and orphaned object (a file no sidecar lists), each
    unreadable sidecar (not one of ours in shape) and each unsafe one (a key or id in it that
    would reach outside the archive) by recording id and key, and exits 1 on any finding.
    Orphans are looked for when no selection option narrows the check.

    The catalog remembers when each file was last verified and what was found; the summary
    gives the coverage (share of files verified ok within 30/90/365 days, the oldest
    verification). --sample reads only part of the files, failing ones and the least
    recently verified first: a nightly `--sample 4%` reads every file within a month.
    --repair downloads a missing or altered original again and rewrites it, only when the
    provider's bytes hash to the sidecar's SHA-256; it reports each as repaired,
    unrepairable or locked (under Object Lock: never touched), and exits 1 unless every
    finding was repaired.

    \b
    Example:
      archiver verify --dest s3://acme-calls/recordings --report verify.json
      archiver verify --dest ./archive --sample 4% --metrics-file /var/lib/node_exporter/verify.prom
      archiver verify --dest ./archive --repair
    """
    settings = wiring.load(ctx, {"archive.dest": dest, "archive.catalog": catalog})
    take_stdout_for_json(as_json, report)
    check_output_path("--report", report, dash=True)  # before reading the whole archive
    check_output_path("--metrics-file", metrics_file)
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

    result = api.verify(settings, selection, workers=workers, on_file=progress, sample=sample, repair=repair)
    if not result.recordings:
        echo(f"verify: {nothing_selected(selection)}", err=True)
    for f in result.findings:
        who = f" recording {f.recording_id}" if f.recording_id else ""
        echo(f"{f.kind}{who}: {f.key}: {f.detail}", err=True)
    for r in result.repairs or ():
        who = f" recording {r['recording_id']}" if r["recording_id"] else ""
        echo(f"{r['result']}{who}: {r['key']}: {r['detail']}", err=r["result"] != "repaired")
    redact = current_redactor()
    if report:
        write_report(report, redact.doc(result.report() | {"dest": result.dest}))
    if metrics_file:
        write_metrics(metrics_file, redact(render_verify_metrics(result, utcnow())))
    counts = result.report()["counts"]
    line = (
        f"recordings={result.recordings} files={result.files_checked} altered={counts['altered']} "
        f"missing={counts['missing']} orphaned={counts['orphaned']} "
        f"unreadable={counts['unreadable']} unsafe={counts['unsafe']}"
        + (f" unlisted={counts['unlisted']}" if counts["unlisted"] else "")
    )
    if result.repairs is not None:
        done = [r["result"] for r in result.repairs]
        line += " " + " ".join(f"{k}={done.count(k)}" for k in ("repaired", "unrepairable", "locked"))
    if result.sample:
        line += f" (sample: {result.sample} of {len(result.files)} files)"
    echo(line + ("" if result.orphans_checked else " (orphans not checked)"))
    if result.coverage is not None:
        echo(describe_coverage(result.coverage))
    # The repair runs as this verify did: with its config file and catalog, if they were named.
    config = ctx.obj.config if isinstance(ctx.obj, GlobalOptions) else None
    same = (["--config", config] if config else []) + (["--catalog", catalog] if catalog else [])
    fixes = [] if repair else repairs(result.findings, result.dest, same)
    for fix in fixes:
        echo(f"repair: {fix}")
    if as_json:
        print_json("verify", redact.doc(result.report() | {"dest": result.dest, "repair_commands": fixes}))
    raise SystemExit(ExitCode.FAILED if unresolved(result) else ExitCode.OK)


def repairs(findings: Iterable[Finding], dest: str, same: Sequence[str] = ()) -> list[str]:
    """What to run (or do) about each kind of finding, one line each.

    An original altered or missing is downloaded again from its provider and checked against
    the sidecar's SHA-256 (``verify --repair``, while the provider still has it); a rendition
    is encoded again from
    the original (``transcode --force``, narrowed to the recording's call). A sidecar that
    cannot be used, or an object no sidecar lists, has no command that knows what it should
    be: those lines say so. ``same``: the options the commands need to run as this one did
    (``--config``, ``--catalog``; transcode takes the config only)."""
    config = list(same[:2]) if same[:1] == ["--config"] else []
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
    count = sum(len(ids) for ids in originals.values())
    lines = (
        [
            shlex.join(["archiver", "verify", "--dest", dest, "--repair", *same])
            + f"   # downloads the {count} original(s) again, kept only if they hash to the sidecar"
        ]
        if originals
        else []
    )
    lines += [
        shlex.join(
            [
                "archiver",
                "transcode",
                "--dest",
                dest,
                "--profile",
                profile,
                "--force",
                "--call-id",
                call,
                *config,
            ]
        )
        for profile, call in renditions
    ]
    unlisted = other.pop("unlisted", [])
    for kind, keys in other.items():
        what = "object(s) no sidecar lists" if kind == "orphaned" else f"{kind} file(s) or sidecar(s)"
        lines.append(
            f"{len(keys)} {what} ({keys[0]}{', ...' if len(keys) > 1 else ''}): no command knows what "
            "they should hold; restore them from a backup or remove them, then run "
            + shlex.join(["archiver", "verify", "--dest", dest, *same])
        )
    if unlisted:  # last: what the sidecars above are made good again may list them
        lines.append(
            f"{len(unlisted)} object(s) no usable sidecar lists "
            f"({unlisted[0]}{', ...' if len(unlisted) > 1 else ''}): "
            "keep them; a sidecar that could not be used may be theirs. Restore the sidecars "
            "first, then run " + shlex.join(["archiver", "verify", "--dest", dest, *same])
        )
    return lines
