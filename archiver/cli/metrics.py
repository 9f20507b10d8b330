"""Prometheus text-format metrics for node_exporter's textfile collector.

Every metric is a gauge (the last run's value), so none ends in ``_total``: promtool keeps that
suffix for counters. Every sample carries ``provider`` (and account, dest, command) labels:
each file is rewritten whole by each run, so two providers write two files in the one
textfile folder (``archiver-plivo.prom``, ``archiver-catapult.prom``) and their samples never
collide.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from archiver.cli.outputs import write_atomic
from archiver.runner import STATUSES, RunResult
from archiver.timeutil import parse_provider_time

if TYPE_CHECKING:  # a run's metrics need no verify code
    from archiver.compliance.verify import VerifyResult


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


def render_verify_metrics(result: VerifyResult, now: datetime) -> str:
    """The metrics of one ``verify``: what it read and found, and the archive's coverage
    (alert on ``archiver_verify_coverage_ratio{within="30d"} < 1`` after a month of nightly
    samples, or on an old ``archiver_verify_oldest_verification_timestamp_seconds``)."""
    labels = f'dest="{_label(result.dest)}"'
    counts = result.report()["counts"]
    lines = [
        "# HELP archiver_verify_last_run_timestamp_seconds When verify last ran.",
        "# TYPE archiver_verify_last_run_timestamp_seconds gauge",
        f"archiver_verify_last_run_timestamp_seconds{{{labels}}} {now.timestamp():.3f}",
        "# HELP archiver_verify_files_checked Files the last verify read.",
        "# TYPE archiver_verify_files_checked gauge",
        f"archiver_verify_files_checked{{{labels}}} {result.files_checked}",
        "# HELP archiver_verify_bytes_read Bytes the last verify read.",
        "# TYPE archiver_verify_bytes_read gauge",
        f"archiver_verify_bytes_read{{{labels}}} {result.bytes_read}",
        "# HELP archiver_verify_findings Findings of the last verify by kind.",
        "# TYPE archiver_verify_findings gauge",
    ]
    from archiver.compliance.verify import KINDS

    lines += [f'archiver_verify_findings{{{labels},kind="{k}"}} {counts.get(k, 0)}' for k in KINDS]
    if result.repairs is not None:
        done = [r["result"] for r in result.repairs]
        lines += [
            "# HELP archiver_verify_repairs Repairs of the last verify by result.",
            "# TYPE archiver_verify_repairs gauge",
        ]
        lines += [
            f'archiver_verify_repairs{{{labels},result="{k}"}} {done.count(k)}'
            for k in ("repaired", "unrepairable", "locked")
        ]
    cov = result.coverage
    if cov is not None:
        oldest = parse_provider_time(cov["oldest_verification"]) if not cov["never_verified"] else None
        lines += [
            "# HELP archiver_verify_files Files the selected sidecars list.",
            "# TYPE archiver_verify_files gauge",
            f"archiver_verify_files{{{labels}}} {cov['files']}",
            "# HELP archiver_verify_coverage_ratio Share of files verified ok within the period.",
            "# TYPE archiver_verify_coverage_ratio gauge",
        ]
        lines += [
            f'archiver_verify_coverage_ratio{{{labels},within="{p}"}} {v}'
            for p, v in cov["verified_within"].items()
        ]
        lines += [
            "# HELP archiver_verify_never_verified_files Files never verified against their current SHA-256.",
            "# TYPE archiver_verify_never_verified_files gauge",
            f"archiver_verify_never_verified_files{{{labels}}} {cov['never_verified']}",
            "# HELP archiver_verify_oldest_verification_timestamp_seconds The least recent last "
            "verification of any file (0 while some file was never verified).",
            "# TYPE archiver_verify_oldest_verification_timestamp_seconds gauge",
            f"archiver_verify_oldest_verification_timestamp_seconds{{{labels}}} "
            f"{oldest.timestamp() if oldest else 0:.3f}",
        ]
    return "\n".join(lines) + "\n"


def write_metrics(path: str, text: str) -> None:
    """Atomically (temp file + rename), as the textfile collector requires."""
    write_atomic(path, text, 0o644)
