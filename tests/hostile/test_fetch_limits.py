"""Downloads that never end and media URLs we must not follow (issue 8, items 3.6, 3.14)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from scripted import Reply, Scripted
from stand_in import RANGE, plivo_page, plivo_record, wav

from archiver.media.fetch import download_deadline


def test_deadline_scales_with_the_expected_size() -> None:
    assert download_deadline(120, None, None) == 120
    assert download_deadline(120, 57_600_000, None) == pytest.approx(57_600_000 / 65536)  # 1 h WAV: 879 s
    assert download_deadline(1, None, 3600) == pytest.approx(3600 * 288_000 / 65536)
    assert download_deadline(1, None, float("nan")) == 1


def test_a_dripping_body_fails_at_its_deadline_and_the_run_ends(
    cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config
) -> None:
    plist = plivo_at(scripted)
    scripted.route("GET", plist, plivo_page([plivo_record(scripted, "r-1")]))
    # 32 kB at 200 bytes/s would take almost three minutes; each byte beats the read timeout.
    scripted.route("GET", r"/media/.*", Reply(body=wav(2.0), drip=200.0))
    report = tmp_path / "report.json"
    began = time.monotonic()
    r = cli(
        "--config",
        quick_config("download_deadline_seconds = 1.0"),
        "backfill",
        "--provider",
        "plivo",
        *RANGE,
        "--dest",
        str(tmp_path / "a"),
        "--report",
        str(report),
    )
    took = time.monotonic() - began
    assert r.exit_code == 1, r.output
    (failure,) = json.loads(report.read_text())["failures"]
    assert failure["stage"] == "fetch" and "download deadline of 1 s passed" in failure["error"]
    assert len(scripted.hits(r"/media/.*")) == 2  # a transient: retried (quick_config: 2 attempts)
    # Two attempts of 1 s, a retry wait within max_retry_seconds (2 s): far below the body's 160 s.
    assert took < 30, took
