"""Which files a sampled verify reads, and the coverage it reports (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from archiver.catalog import Verified
from archiver.compliance.coverage import Sample, coverage, parse_sample, pick
from archiver.errors import ConfigError, UnsafeKeyError
from archiver.models import DEFAULT_LAYOUT, Recording, build_key

NOW = datetime(2026, 6, 15, tzinfo=UTC)


def job(n: int) -> tuple[str, dict]:
    return (f"r{n}", {"key": f"p/{n}.wav", "sha256": f"{n:064x}"})


def test_parse_sample() -> None:
    assert parse_sample("10%") == Sample(percent=10.0) and parse_sample("2.5%").size(1000) == 25
    assert parse_sample("40") == Sample(count=40) and parse_sample("40").size(7) == 7
    assert Sample(percent=3).size(10) == 1  # rounds up: a small archive still gets read
    for bad in ("0%", "101%", "0", "-1", "x", "5 %"):
        with pytest.raises(ConfigError):
            parse_sample(bad)


def test_pick_reads_failing_then_never_then_least_recently_verified() -> None:
    jobs = [job(n) for n in range(6)]
    history = {
        "p/0.wav": Verified(f"{0:064x}", NOW - timedelta(days=1), "ok"),
        "p/1.wav": Verified(f"{1:064x}", NOW - timedelta(days=9), "ok"),
        "p/2.wav": Verified(f"{2:064x}", NOW, "altered"),  # failing: always read
        "p/3.wav": Verified("f" * 64, NOW - timedelta(days=2), "ok"),  # sidecar changed: never
        # 4 and 5: never verified
    }
    assert [j[0] for j in pick(jobs, history, Sample(count=4))] == ["r2", "r3", "r4", "r5"]
    assert [j[0] for j in pick(jobs, history, Sample(count=5))] == ["r1", "r2", "r3", "r4", "r5"]
    # More failing files than the sample: all of them still.
    failing = {j[1]["key"]: Verified(j[1]["sha256"], NOW, "unreadable") for j in jobs}
    assert len(pick(jobs, failing, Sample(count=1))) == 6


def test_coverage_counts_only_ok_checks_against_the_current_sha() -> None:
    files = [(j[1]["key"], j[1]["sha256"]) for j in (job(n) for n in range(4))]
    history = {
        "p/0.wav": Verified(f"{0:064x}", NOW - timedelta(days=10), "ok"),
        "p/1.wav": Verified(f"{1:064x}", NOW - timedelta(days=100), "ok"),
        "p/2.wav": Verified(f"{2:064x}", NOW, "missing"),
        "p/3.wav": Verified("e" * 64, NOW, "ok"),  # another SHA-256: not this file's check
    }
    cov = coverage(files, history, NOW)
    assert cov["verified_within"] == {"30d": 0.25, "90d": 0.25, "365d": 0.5}
    assert cov["never_verified"] == 1 and cov["failing"] == 1
    assert cov["oldest_verification"] == "2026-03-07T00:00:00Z"
    assert coverage([], {}, NOW)["verified_within"]["30d"] == 1.0


def test_no_layout_puts_a_recording_under_the_reserved_underscore() -> None:
    rec = Recording("plivo", "_custody", "r1", "complete", None, NOW, None, 1.0, "http://x/r", None, {})
    assert build_key(DEFAULT_LAYOUT, rec, "wav").startswith("plivo/_custody/")  # below the root: fine
    with pytest.raises(UnsafeKeyError, match="archiver's own"):
        build_key("{account}/{recording_id}.{ext}", rec, "wav")
