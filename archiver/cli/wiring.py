"""The only place that turns Settings into objects and hands them down."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from archiver.cli.logs import setup_logging
from archiver.cli.metrics import render_metrics, write_metrics
from archiver.cli.output import current_redactor, echo, use_redactor
from archiver.cli.outputs import write_report
from archiver.config import Settings, config_path_from, environ, load_settings
from archiver.errors import ConfigError
from archiver.runner import RunResult
from archiver.session import (  # noqa: F401 - the CLI's commands build through wiring
    build_provider,
    build_storage,
    build_transcoder,
    catalog_path,
    open_catalog,
    quick,
)

if TYPE_CHECKING:
    from archiver.api import UnitExecutor

log = logging.getLogger("archiver")


@dataclass(frozen=True)
class GlobalOptions:
    config: str | None
    verbose: int
    quiet: bool
    log_format: str


def load(ctx: click.Context, flags: dict[str, Any]) -> Settings:
    """Settings for this invocation; logging set up with the secrets to redact."""
    g: GlobalOptions = ctx.obj
    env = environ()
    settings = load_settings(config_path_from(g.config, env), env, flags)
    redactor = settings.redactor()
    setup_logging(g.verbose, g.quiet, g.log_format, redactor)
    use_redactor(ctx, redactor)
    return settings


def finish(
    result: RunResult,
    report_path: str | None,
    metrics_path: str | None = None,
    last_success: datetime | None = None,
) -> None:
    """Write the report and metrics, print the one summary line, exit with the spec's code.
    Every sink is redacted again here: defence in depth behind the provider boundary."""
    redact = current_redactor()
    if report_path:
        write_report(report_path, redact.doc(result.report()))
    if metrics_path:
        write_metrics(metrics_path, redact(render_metrics(result, last_success)))
    if result.fatal:
        echo(f"error: {result.fatal}", err=True)
    # The last log event: a log shipper gets the counts without parsing the summary line.
    # In text logs it would only repeat the summary printed below, so it is a debug line there.
    g = click.get_current_context(silent=True)
    json_logs = bool(g and isinstance(g.obj, GlobalOptions) and g.obj.log_format == "json")
    log.log(
        logging.INFO if json_logs else logging.DEBUG,
        "run.summary: %s",
        result.summary(),
        extra={
            "event": "run.summary",
            "counts": result.report()["counts"],
            "exit_code": result.exit_code,
        },
    )
    echo(result.summary())
    raise SystemExit(result.exit_code)


def open_executor(
    kind: str,
    scheduler: str | None,
    max_tasks_in_flight: int | None,
    settings: Settings,
    *,
    config: str | None = None,
    verbose: int = 0,
) -> UnitExecutor | None:
    """None for the local thread pool; a connected DaskExecutor for ``dask``. Workers this
    starts (``local:N``) read the same config file as this process (``config``)."""
    if kind == "local":
        return None
    if not scheduler:
        raise ConfigError(
            "--executor dask needs a scheduler: --scheduler tcp://HOST:8786 (or local:N), "
            "$ARCHIVER_DASK_SCHEDULER, or [dask] scheduler in the config file"
        )
    dest = settings.archive.dest or ""
    here = scheduler.startswith("local") or urlsplit(scheduler).hostname in ("127.0.0.1", "localhost", "::1")
    if dest and "://" not in dest.removeprefix("file://") and not here:
        raise ConfigError(
            f"--dest {dest} is a folder, and the workers of {scheduler} would each write to their own "
            "disk: archive to s3://... on a cluster of hosts (or use --scheduler local:N)"
        )
    try:
        from archiver.cluster import DaskExecutor
    except ImportError:
        raise ConfigError(
            "--executor dask needs the dask extra: pip install 'archiver[dask]' "
            "(on the scheduler and every worker too)"
        ) from None
    return DaskExecutor.connect(
        scheduler,
        max_tasks_in_flight=max_tasks_in_flight or settings.dask.max_tasks_in_flight,
        env={"ARCHIVER_CONFIG": os.path.abspath(config)} if config else None,
        quiet=verbose < 2,
    )
