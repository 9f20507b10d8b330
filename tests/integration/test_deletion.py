"""Deleting at the provider only after a verified copy exists, and never during a listing."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from archiver.sim import Simulator


def test_deletes_after_the_walk_and_only_verified_copies(
    backfill, cli, tmp_path: Path, monkeypatch, use_sim
) -> None:
    with Simulator(recordings=25, seed=41) as sim:
        use_sim(sim)
        dest = tmp_path / "a"
        # One recording cannot be stored: a folder stands where its file should go.
        blocked = sim.plivo[3]
        account = sim.env()["PLIVO_AUTH_ID"]
        (
            dest / "plivo" / account / blocked.started.strftime("%Y/%m/%d") / f"{blocked.id}.{blocked.fmt}"
        ).mkdir(parents=True)
        report = tmp_path / "r.json"
        catalog = tmp_path / "cat.db"
        r = backfill(
            "plivo",
            str(dest),
            "--catalog",
            str(catalog),
            "--delete-after-archive",
            "--report",
            str(report),
        )
        assert r.exit_code == 1
        assert "archived=24" in r.output and "failed=1" in r.output and "deleted=24" in r.output
        assert sim.deleted == {x.id for x in sim.plivo} - {blocked.id}
        # every DELETE came after the last listing request
        last_list = max(i for i, e in enumerate(sim.events) if e == "plivo.list")
        first_delete = min(i for i, e in enumerate(sim.events) if e == "plivo.delete")
        assert last_list < first_delete
        deletions = json.loads(report.read_text())["deletions"]
        assert len(deletions) == 24 and all(
            d["result"] == "deleted" and d["verified_sha256"] for d in deletions
        )
        with closing(sqlite3.connect(catalog)) as db:
            rows = db.execute("SELECT recording_id, result FROM deletions").fetchall()
        assert {rid for rid, _ in rows} == sim.deleted


def test_altered_copy_is_not_deleted_and_dry_run_only_says(
    backfill, cli, tmp_path: Path, monkeypatch, use_sim
) -> None:
    with Simulator(recordings=5, seed=42) as sim:
        use_sim(sim)
        dest = tmp_path / "a"
        assert backfill("plivo", str(dest)).exit_code == 0
        side = json.loads(next(dest.rglob(f"{sim.plivo[1].id}.json")).read_text())
        with open(dest / side["files"][0]["key"], "ab") as fh:
            fh.write(b"x")
        dry = backfill(
            "plivo",
            str(dest),
            "--force",
            "--delete-after-archive",
            "--dry-run",
        )
        assert dry.exit_code == 0, dry.output
        assert sim.stats["plivo.delete"] == 0
        # --force re-plans everything as "would archive"; without it the windows are finished.
        plain = cli(
            "backfill",
            "--provider",
            "plivo",
            "--since",
            "2024-01-01",
            "--until",
            "2024-03-01",
            "--window",
            "2d",
            "--dest",
            str(dest),
            "--delete-after-archive",
            "--dry-run",
        )
        assert plain.output.count("would-delete") == 4
        assert f"kept {sim.plivo[1].id}: stored" in plain.output and "does not match" in plain.output
        assert sim.stats["plivo.delete"] == 0


def test_older_than_keeps_recent_recordings(
    backfill, cli, tmp_path: Path, monkeypatch, use_sim, freeze
) -> None:
    with Simulator(recordings=10, seed=43) as sim:
        use_sim(sim)
        cutoff = datetime(2024, 2, 1, tzinfo=UTC)
        days = 700
        # "now" is frozen so that now - N days is exactly the cutoff, whatever the hour.
        freeze(cutoff + timedelta(days=days))
        r = backfill(
            "plivo",
            str(tmp_path / "a"),
            "--delete-after-archive",
            "--delete-older-than-days",
            str(days),
        )
        assert r.exit_code == 0, r.output
        old = {x.id for x in sim.plivo if x.started < cutoff}
        assert sim.deleted == old and 0 < len(old) < 10


def test_catapult_has_no_delete(backfill, cli, tmp_path: Path, monkeypatch, use_sim) -> None:
    with Simulator(recordings=2, seed=44) as sim:
        use_sim(sim)
        r = backfill("catapult", str(tmp_path), "--delete-after-archive")
        assert r.exit_code == 2 and "no recording delete" in r.output
