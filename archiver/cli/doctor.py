"""``archiver doctor``: check providers, ffmpeg, destination and catalog."""

from __future__ import annotations

import dataclasses
import os

import click

from archiver.cli import wiring
from archiver.cli.options import dest_option, executor_option, exit_codes, json_option, scheduler_option
from archiver.cli.output import echo
from archiver.cli.outputs import print_json, take_stdout_for_json
from archiver.doctor import (
    Finding,
    check_catalog,
    check_environment,
    check_ffmpeg,
    check_pacing,
    check_provider,
    check_storage,
    check_workers,
    versions,
)
from archiver.errors import ExitCode
from archiver.media.transcode import find_ffmpeg
from archiver.providers import make_client


@click.command()
@click.option(
    "--provider",
    "providers",
    multiple=True,
    type=click.Choice(["catapult", "plivo"]),
    help="Providers to check (default: every one with credentials configured).",
)
@dest_option
@click.option("--catalog", type=click.Path(dir_okay=False), help="Catalog database to check.")
@executor_option("dask: also check every worker of the cluster (credentials, destination, ffmpeg, versions).")
@scheduler_option
@json_option
@click.pass_context
@exit_codes
def doctor(
    ctx: click.Context,
    providers: tuple[str, ...],
    dest: str | None,
    catalog: str | None,
    executor: str,
    scheduler: str | None,
    as_json: bool,
) -> None:
    """Check credentials, ffmpeg, the destination and the catalog; say how to fix each problem.

    Exits 1 when something would stop a run. Writes, reads and deletes one small probe object
    in the destination.

    \b
    Example:
      archiver doctor --provider plivo --dest s3://acme-calls/recordings
    """
    settings = wiring.load(ctx, {"archive.dest": dest, "archive.catalog": catalog})
    take_stdout_for_json(as_json)
    findings: list[Finding] = []
    chosen = providers or tuple(
        name
        for name, configured in (("catapult", settings.catapult.user_id), ("plivo", settings.plivo.auth_id))
        if configured
    )
    if not chosen:
        findings.append(
            Finding(
                "warn",
                "providers",
                "no provider credentials configured",
                "export PLIVO_AUTH_ID/PLIVO_AUTH_TOKEN or CATAPULT_USER_ID/..._TOKEN/..._SECRET",
            )
        )
    with make_client(timeout=min(settings.http.timeout_seconds, 15.0)) as client:
        for name in chosen:
            findings.append(
                check_provider(
                    name,
                    lambda n=name: wiring.build_provider(  # type: ignore[misc]
                        wiring.quick(settings), n, client
                    ),
                )
            )
    findings.extend(check_environment(os.environ))
    findings.append(check_ffmpeg(find_ffmpeg(settings.transcode.ffmpeg)))
    if settings.archive.dest:
        storage = wiring.build_storage(settings)
        try:
            findings.extend(check_storage(storage))
        finally:
            storage.close()
    else:
        findings.append(Finding("warn", "destination", "none given", "pass --dest or set [archive] dest"))
    # Before the catalog check: it reports the folder as a run will find it.
    findings.append(check_pacing(os.path.dirname(os.path.abspath(wiring.catalog_path(settings)))))
    findings.append(check_catalog(wiring.catalog_path(settings)))
    if executor == "dask":
        cluster = wiring.open_executor("dask", scheduler or settings.dask.scheduler, None, settings)
        try:
            from archiver.cluster import DaskExecutor, worker_facts

            assert isinstance(cluster, DaskExecutor)
            facts = cluster.client.run(worker_facts, settings.without_secrets(), chosen)
            findings.extend(check_workers(facts, versions()))
        finally:
            if cluster is not None:
                cluster.shutdown()
    for f in findings:
        echo(*f.lines())
    failed = sum(f.level == "fail" for f in findings)
    warned = sum(f.level == "warn" for f in findings)
    echo(f"doctor: {len(findings)} checks, {failed} failed, {warned} warnings")
    if as_json:
        print_json(
            "doctor",
            {
                "checks": [dataclasses.asdict(f) for f in findings],
                "counts": {"checks": len(findings), "failed": failed, "warnings": warned},
            },
        )
    raise SystemExit(ExitCode.FAILED if failed else ExitCode.OK)
