from __future__ import annotations

from datetime import UTC, datetime, timedelta

from archiver.cli.metrics import render_metrics
from archiver.models import Outcome
from archiver.runner import RunResult


def test_prometheus_text() -> None:
    r = RunResult(command="run", provider="plivo", account="MA1", dest='s3://b/"x"')
    r.started_at = datetime(2024, 1, 1, tzinfo=UTC)
    r.finished_at = r.started_at + timedelta(seconds=90)
    r.listed = 3
    r.add(Outcome("a", "archived", bytes_downloaded=10, bytes_written=12))
    r.add(Outcome("b", "failed", stage="fetch", error="x"))
    text = render_metrics(r, last_success=datetime(2023, 12, 31, tzinfo=UTC))
    labels = 'command="run",provider="plivo",account="MA1",dest="s3://b/\\"x\\""'
    assert f"archiver_last_run_duration_seconds{{{labels}}} 90.000" in text
    assert f'archiver_last_run_recordings{{{labels},status="failed"}} 1' in text
    assert f"archiver_last_run_exit_code{{{labels}}} 1" in text
    assert f"archiver_last_success_timestamp_seconds{{{labels}}} 1703980800.000" in text
    assert f"archiver_last_run_bytes_downloaded{{{labels}}} 10" in text
    assert "_total" not in text  # every metric is a gauge: promtool keeps _total for counters
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])
