"""Other commands on the same destination while a run is live: none may touch its work.

The live run is a real process whose downloads the scripted server holds at a gate, so the
other commands run while it certainly has files in flight (a condition, not a sleep)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from stand_in import PLIVO_ID, PLIVO_TOKEN, RANGE, hold_media, plivo_listing, plivo_record, wav

N = 30
FREE = 3  # downloads served before the gate


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_live_backfill_survives_verify_doctor_dry_run_export_and_refused_runs_and_reindex(
    cli, tmp_path: Path, scripted, plivo_at, monkeypatch
) -> None:
    plist = plivo_at(scripted)
    records = [plivo_record(scripted, f"r-{i:02d}", start_ms=1706781600000 + i * 60_000) for i in range(N)]
    scripted.route("GET", plist, plivo_listing(records))
    gate, served = hold_media(scripted, FREE, wav(1.0), wait=30)
    dest = tmp_path / "archive"
    catalog = tmp_path / "cat.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "CATAPULT_", "ARCHIVER_"))} | {
        "PLIVO_AUTH_ID": PLIVO_ID,
        "PLIVO_AUTH_TOKEN": PLIVO_TOKEN,
        "PLIVO_BASE_URL": scripted.url,
        "PLIVO_REQUESTS_PER_SECOND": "1000",
    }
    live = subprocess.Popen(
        [sys.executable, "-m", "archiver", "backfill", "--provider", "plivo", *RANGE, "--dest", str(dest)]
        + ["--catalog", str(catalog), "--concurrency", "4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(list(dest.rglob("*.json"))) >= FREE, "the live run's first sidecars")
        wait_for(lambda: sum(served.values()) >= FREE + 4, "downloads held at the gate")
        staging = dest / ".archiver-staging"
        in_flight = sorted(p.name for p in staging.iterdir())
        assert any(p.endswith(".lock") for p in in_flight), in_flight

        # Read-only and refused commands against the same destination and catalog.
        verify = cli("verify", "--dest", str(dest))
        assert "Traceback" not in verify.output
        doctor = cli("doctor", "--dest", str(dest), "--catalog", str(catalog))
        assert "Traceback" not in doctor.output
        second = cli(
            "backfill", "--provider", "plivo", *RANGE, "--dest", str(dest), "--catalog", str(catalog)
        )
        assert second.exit_code == 3 and "another run" in second.output
        # The same folder through a symlink and through '..' is the same destination: refused too.
        (tmp_path / "link").symlink_to(dest)
        for alias in (tmp_path / "link", tmp_path / "x" / ".." / "archive"):
            (tmp_path / "x").mkdir(exist_ok=True)
            again = cli(
                "backfill", "--provider", "plivo", *RANGE, "--dest", str(alias), "--catalog", str(catalog)
            )
            assert again.exit_code == 3 and "another run" in again.output, (alias, again.output)
        dry = cli(
            "backfill",
            "--provider",
            "plivo",
            *RANGE,
            "--dest",
            str(dest),
            "--catalog",
            str(catalog),
            "--dry-run",
        )
        assert dry.exit_code == 0, dry.output
        # reindex would rebuild the catalog's record of the destination under the live run
        reindex = cli("reindex", "--dest", str(dest), "--catalog", str(catalog))
        assert reindex.exit_code == 3 and f"a run is archiving into {dest}" in reindex.output, reindex.output
        export = cli("export", "--dest", str(dest), "--out", str(tmp_path / "out"), "--catalog", str(catalog))
        assert "Traceback" not in export.output
        # The live run's files in flight are all still there.
        assert set(in_flight) <= {p.name for p in staging.iterdir()}
    finally:
        gate.set()
        out, err = live.communicate(timeout=120)
    assert live.returncode == 0, err
    assert f"listed={N} archived={N}" in out
    sidecars = sorted(dest.rglob("*.json"))
    assert len(sidecars) == N
    # exactly once: one download per recording, every stored file matches its sidecar
    assert all(count == 1 for count in served.values()) and len(served) == N
    for sidecar in sidecars:
        doc = json.loads(sidecar.read_text())
        assert (dest / doc["files"][0]["key"]).stat().st_size == doc["files"][0]["bytes"]
    assert not (dest / ".archiver-staging").exists()
    assert cli("verify", "--dest", str(dest)).exit_code == 0
