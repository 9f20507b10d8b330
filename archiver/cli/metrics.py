"""Prometheus text-format metrics for node_exporter's textfile collector.

Every metric is a gauge (the last run's value), so none ends in ``_total``: promtool keeps that
suffix for counters. Every sample carries ``provider`` (and account, dest, command) labels:
each file is rewritten whole by each run, so two providers write two files in the one
textfile folder (``archiver-plivo.prom``, ``archiver-catapult.prom``) and their samples never
collide.
"""

from __future__ import annotations

from datetime import datetime

from archiver.cli.outputs import write_atomic
from archiver.runner import STATUSES, RunResult


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(result: RunResult, last_success: datetime | None) -> str:
    """The metrics of one run. ``last_success`` survives failed runs, so a missed or failing
    night shows as an old timestamp an alert can watch."""
    labels = (
        f'command="{_label(result.command)}",provider="{_label(result.provider)}",'
        f'account="{_label(result.account)}",dest="{_label(result.dest)}"'
    )
    finished = result.finished_at or result.started_at
    lines = [
        "# HELP archiver_last_run_timestamp_seconds When the last run finished.",
        "# TYPE archiver_last_run_timestamp_seconds gauge",
        f"archiver_last_run_timestamp_seconds{{{labels}}} {finished.timestamp():.3f}",
        "# HELP archiver_last_success_timestamp_seconds When a run last finished with exit code 0.",
        "# TYPE archiver_last_success_timestamp_seconds gauge",
        f"archiver_last_success_timestamp_seconds{{{labels}}} "
        f"{last_success.timestamp() if last_success else 0:.3f}",
        "# HELP archiver_last_run_exit_code Exit code of the last run "
        "(0 ok, 1 some failed, 3 aborted, 130/143 stopped by SIGINT/SIGTERM).",
        "# TYPE archiver_last_run_exit_code gauge",
        f"archiver_last_run_exit_code{{{labels}}} {result.exit_code}",
        "# HELP archiver_last_run_duration_seconds How long the last run took.",
        "# TYPE archiver_last_run_duration_seconds gauge",
        f"archiver_last_run_duration_seconds{{{labels}}} "
        f"{(finished - result.started_at).total_seconds():.3f}",
        "# HELP archiver_last_run_recordings Recordings of the last run by outcome.",
        "# TYPE archiver_last_run_recordings gauge",
        f'archiver_last_run_recordings{{{labels},status="listed"}} {result.listed}',
    ]
    lines += [f'archiver_last_run_recordings{{{labels},status="{s}"}} {result.counts[s]}' for s in STATUSES]
    lines += [
        "# HELP archiver_last_run_bytes_downloaded Bytes downloaded by the last run.",
        "# TYPE archiver_last_run_bytes_downloaded gauge",
        f"archiver_last_run_bytes_downloaded{{{labels}}} {result.bytes_downloaded}",
        "# HELP archiver_last_run_bytes_written Bytes written by the last run.",
        "# TYPE archiver_last_run_bytes_written gauge",
        f"archiver_last_run_bytes_written{{{labels}}} {result.bytes_written}",
    ]
    return "\n".join(lines) + "\n"


def write_metrics(path: str, text: str) -> None:
    """Atomically (temp file + rename), as the textfile collector requires."""
    write_atomic(path, text, 0o644)
