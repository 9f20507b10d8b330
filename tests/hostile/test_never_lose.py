"""Issue 8 section 1 and 3.4/3.7: nothing lost when a recording fails for an internal reason,
when a run is limited, when a recording gives up, when a provider forges our temp names, and
when the destination breaks under a live run."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import subprocess
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scripted import Reply
from stand_in import PLIVO_ID, RANGE, plivo_backfill, plivo_record, serve_plivo, wav

DAY = 86_400_000
T0 = 1706781600000  # 2024-02-01 10:00 UTC


def media_ok(srv, body: bytes | None = None) -> None:
    srv.route("GET", r"/media/.*", Reply(body=body or wav(1.0), headers={"Content-Type": "audio/wav"}))


def rows(catalog: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(catalog)) as db:
        return db.execute(sql).fetchall()


def media_hits(srv) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in srv.hits(r"/media/.*", "GET"):
        out[r.path] = out.get(r.path, 0) + 1
    return out


def test_an_internal_failure_is_remembered_and_retried(
    cli, tmp_path, scripted, plivo_at, quick_config
) -> None:
    """A media URL that breaks the HTTP client (a port out of range) used to fail at stage
    'internal', unremembered, while the window was marked finished: reruns exited 0, listed=0."""
    plist = plivo_at(scripted)
    records = [
        plivo_record(scripted, "good"),
        plivo_record(scripted, "bad", start_ms=T0 + 60_000, recording_url="http://127.0.0.1:99999/x.wav"),
    ]
    serve_plivo(scripted, plist, records)
    media_ok(scripted)
    args = plivo_backfill(quick_config(), tmp_path / "a")
    args += ["--catalog", str(tmp_path / "cat.db")]
    first = cli(*args)
    assert first.exit_code == 1, first.output
    assert "archived=1" in first.output and "failed=1" in first.output
    assert rows(tmp_path / "cat.db", "SELECT state, attempts FROM recordings WHERE recording_id='bad'") == [
        ("failed", 1)
    ]
    # The provider fixes the URL: the next run retries it by id and archives it.
    records[1]["recording_url"] = f"{scripted.url}/media/bad.wav"
    second = cli(*args)
    assert second.exit_code == 0, second.output
    assert "listed=1 archived=1" in second.output
    assert len(list((tmp_path / "a").rglob("*.json"))) == 2


def test_run_with_a_limit_moves_the_watermark_only_as_far_as_it_settled(
    cli, tmp_path, scripted, plivo_at, quick_config, freeze
) -> None:
    freeze(datetime(2024, 2, 5, 12, tzinfo=UTC))
    plist = plivo_at(scripted)
    records = [plivo_record(scripted, f"r-{i}", start_ms=T0 + (i // 2) * DAY + i * 1000) for i in range(6)]
    serve_plivo(scripted, plist, records)
    media_ok(scripted)
    base = ["--config", quick_config(), "run", "--provider", "plivo", "--dest", str(tmp_path / "a")]
    base += ["--catalog", str(tmp_path / "cat.db")]
    first = cli(*base, "--since", "2024-02-01", "--limit", "3")
    assert first.exit_code == 0, first.output
    assert "archived=3" in first.output
    second = cli(*base)
    assert second.exit_code == 0, second.output
    assert "archived=3" in second.output, second.output
    third = cli(*base)
    assert "archived=0" in third.output
    assert len(list((tmp_path / "a").rglob("*.json"))) == 6
    assert all(n == 1 for n in media_hits(scripted).values()) and len(media_hits(scripted)) == 6


def test_recordings_at_the_retry_limit_are_reported_by_every_run(
    cli, tmp_path, scripted, plivo_at, quick_config, freeze
) -> None:
    """Night after night, the listing moves on from the watermark; a recording that keeps
    failing is retried by id, then reported as given up on every later night, never dropped."""
    plist = plivo_at(scripted)
    serve_plivo(scripted, plist, [plivo_record(scripted, "gone")])
    scripted.route("GET", r"/media/.*", Reply(status=404, json={"error": "no media"}))
    base = ["--config", quick_config("[archive]", "max_failures = 2"), "run", "--provider", "plivo"]
    base += ["--dest", str(tmp_path / "a"), "--catalog", str(tmp_path / "cat.db")]
    nights = [datetime(2024, 2, day, 18, tzinfo=UTC) for day in (1, 2, 3, 4)]
    freeze(nights[0])
    first = cli(*base, "--since", "2024-02-01")
    assert first.exit_code == 1 and "failed=1" in first.output, first.output
    freeze(nights[1])
    second = cli(*base)  # lists from the watermark: retried by id
    assert second.exit_code == 1 and "listed=1" in second.output and "failed=1" in second.output
    tried = len(scripted.hits(r"/media/.*"))
    for night in nights[2:]:  # at the limit: said on every night, and not tried again
        freeze(night)
        r = cli(*base)
        assert r.exit_code == 1, r.output
        assert "listed=1" in r.output and "failed=1" in r.output and "failed 2 times" in r.output
    assert len(scripted.hits(r"/media/.*")) == tried


@pytest.mark.parametrize("forged", [".archiver-tmp-1-x", ".fetch-1-y.part", ".hidden", "..x"])
def test_ids_that_look_like_our_temp_files_are_refused(
    cli, tmp_path, scripted, plivo_at, quick_config, forged
) -> None:
    plist = plivo_at(scripted)
    serve_plivo(
        scripted, plist, [plivo_record(scripted, "good"), plivo_record(scripted, forged, start_ms=T0 + 1)]
    )
    media_ok(scripted)
    args = plivo_backfill(quick_config(), tmp_path / "a")
    first = cli(*args, "--delete-after-archive")
    assert first.exit_code == 1, first.output
    assert "archived=1" in first.output and "failed=1" in first.output and "leading '.'" in first.output
    # nothing of it was stored or requested, and only the good one was deleted at the provider
    assert not [p for p in (tmp_path / "a").rglob("*") if p.name.startswith(forged[:5])]
    assert [r.path for r in scripted.hits(r".*", "DELETE")] == [f"{plist}good/"]
    again = cli(*args)
    assert "archived=0" in again.output
    assert cli("verify", "--dest", str(tmp_path / "a")).exit_code == 0


# --- the destination breaks under a live run -------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs (root and mount(8) needed; skipped elsewhere)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        for options in ("remount,ro", "remount,rw"):  # the tests remount it: can they, here?
            again = subprocess.run(["mount", "-o", options, str(mnt)], capture_output=True)
            if again.returncode != 0:
                pytest.skip(f"cannot remount a tmpfs here: {again.stderr.decode().strip()}")
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def remount(mnt: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mnt)], check=True)


def test_a_full_disk_stops_the_run_counts_no_attempt_and_a_rerun_completes(
    cli, tmp_path, scripted, plivo_at, quick_config, small_disk
) -> None:
    plist = plivo_at(scripted)
    records = [plivo_record(scripted, f"r-{i:02d}", start_ms=T0 + i * 1000, seconds=12.0) for i in range(12)]
    serve_plivo(scripted, plist, records)
    media_ok(scripted, wav(12.0))  # 192 kB each: the 1 MiB disk holds about five
    dest, catalog, report = small_disk / "archive", tmp_path / "cat.db", tmp_path / "report.json"
    args = plivo_backfill(quick_config(), dest)
    args += ["--catalog", str(catalog), "--concurrency", "1"]
    first = cli(*args, "--report", str(report))
    assert first.exit_code == 3, first.output
    assert "the destination failed 2 times in a row" in first.output
    doc = json.loads(report.read_text())
    assert doc["fatal"] and doc["counts"]["archived"] >= 1
    failed = rows(catalog, "SELECT attempts FROM recordings WHERE state='failed'")
    assert failed and all(a == 0 for (a,) in failed)  # the disk's fault, not the recordings'
    assert rows(catalog, "SELECT COUNT(*) FROM windows") == [(0,)]
    assert rows(catalog, "SELECT exit_code FROM runs") == [(3,)]
    # nothing half-written: every file under the archive is complete, only whole sidecars
    for sidecar in dest.rglob("*.json"):
        files = json.loads(sidecar.read_text())["files"]
        assert (dest / files[0]["key"]).stat().st_size == files[0]["bytes"]
    remount(small_disk, "size=16m")
    second = cli(*args)
    assert second.exit_code == 0, second.output
    assert len(list(dest.rglob("*.json"))) == 12
    # those archived the first time were not downloaded again
    assert sum(media_hits(scripted).values()) < 12 + 12
    assert cli("verify", "--dest", str(dest)).exit_code == 0


def test_a_destination_made_read_only_mid_run(
    cli, tmp_path, scripted, plivo_at, quick_config, small_disk
) -> None:
    plist = plivo_at(scripted)
    records = [plivo_record(scripted, f"r-{i:02d}", start_ms=T0 + i * 1000) for i in range(8)]
    serve_plivo(scripted, plist, records)
    count = [0]
    dest = small_disk / "archive"

    def media(req) -> Reply:
        count[0] += 1
        if count[0] == 3:  # the third download: the disk goes read-only under the run
            remount(small_disk, "ro")
        return Reply(body=wav(1.0), headers={"Content-Type": "audio/wav"})

    scripted.route("GET", r"/media/.*", media)
    catalog = tmp_path / "cat.db"
    args = plivo_backfill(quick_config(), dest)
    args += ["--catalog", str(catalog), "--concurrency", "1"]
    first = cli(*args)
    assert first.exit_code == 3, first.output
    assert "archived=2" in first.output and "Read-only file system" in first.output
    assert all(a == 0 for (a,) in rows(catalog, "SELECT attempts FROM recordings WHERE state='failed'"))
    remount(small_disk, "rw")
    second = cli(*args)
    assert second.exit_code == 0, second.output
    assert "archived=6" in second.output
    assert len(list(dest.rglob("*.json"))) == 8


# --- S3 with least-privilege credentials ----------------------------------------------------


def test_s3_without_list_multipart_permission_warns_and_goes_on(scripted, monkeypatch, caplog) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", scripted.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    denied = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
        b"<Message>Access Denied</Message></Error>"
    )
    scripted.route(
        "GET", r"/bucket-lp/?", Reply(status=403, body=denied, headers={"Content-Type": "application/xml"})
    )
    from archiver.storage import open_storage

    store = open_storage("s3://bucket-lp/arch")
    with caplog.at_level(logging.WARNING):
        assert store.recover(f"plivo/{PLIVO_ID}/") == 0
    assert "cannot list unfinished multipart uploads" in caplog.text and "AccessDenied" in caplog.text
    asked = scripted.hits(r"/bucket-lp/?", "GET")
    assert asked and "uploads" in asked[0].query
    store.close()


def test_leftovers_of_a_run_that_was_pid_1_are_cleaned(
    cli, tmp_path, scripted, plivo_at, quick_config
) -> None:
    """In a container every run is pid 1, which is always alive: liveness is the staging lock."""
    import sys

    dest = tmp_path / "a"
    script = (
        "import os, sys; from archiver.storage.staging import Staging; s = Staging(sys.argv[1]); "
        "open(s.path() + '/fetch-x.part', 'wb').write(b'half'); print(os.getpid(), s.token)"
    )
    died = subprocess.run(
        ["unshare", "--pid", "--fork", sys.executable, "-c", script, str(dest / ".archiver-staging")],
        capture_output=True,
        text=True,
    )
    if died.returncode != 0:
        pytest.skip(f"cannot start a process in a new pid namespace here: {died.stderr.strip()}")
    pid, token = died.stdout.split()
    assert pid == "1" and (dest / ".archiver-staging" / token / "fetch-x.part").exists()
    plist = plivo_at(scripted)
    serve_plivo(scripted, plist, [plivo_record(scripted, "r-1")])
    media_ok(scripted)
    r = cli("--config", quick_config(), "backfill", "--provider", "plivo", *RANGE, "--dest", str(dest))
    assert r.exit_code == 0 and "cleaned up 1 leftover" in r.output, r.output
    assert not (dest / ".archiver-staging").exists()


def test_a_catalog_whose_disk_fills_mid_run_stops_it_cleanly(
    cli, tmp_path, scripted, plivo_at, quick_config, small_disk
) -> None:
    plist = plivo_at(scripted)
    records = [plivo_record(scripted, f"r-{i:02d}", start_ms=T0 + i * 1000) for i in range(8)]
    serve_plivo(scripted, plist, records)
    count = [0]
    filler = small_disk / "filler"

    def media(req) -> Reply:
        count[0] += 1
        if count[0] == 3:  # something else fills the catalog's disk
            with open(filler, "wb") as fh, contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 65536)
        return Reply(body=wav(1.0), headers={"Content-Type": "audio/wav"})

    scripted.route("GET", r"/media/.*", media)
    dest, catalog, report = tmp_path / "archive", small_disk / "cat.db", tmp_path / "report.json"
    args = plivo_backfill(quick_config(), dest, "--catalog", str(catalog), "--concurrency", "1")
    first = cli(*args, "--report", str(report))
    assert first.exit_code == 3, first.output
    assert "cannot be written" in first.output and "Traceback" not in first.output
    assert json.loads(report.read_text())["fatal"]
    filler.unlink()
    second = cli(*args)
    assert second.exit_code == 0, second.output
    assert len(list(dest.rglob("*.json"))) == 8
    assert cli("verify", "--dest", str(dest)).exit_code == 0


def test_a_read_only_archive_still_verifies_and_exports(
    cli, tmp_path, scripted, plivo_at, quick_config, small_disk
) -> None:
    """An auditor's read-only snapshot: reading needs no write access. The export is made;
    only its custody event cannot be appended there, which it says (exit 1)."""
    plist = plivo_at(scripted)
    records = [plivo_record(scripted, f"r-{i:02d}", start_ms=T0 + i * 1000, seconds=2.0) for i in range(3)]
    serve_plivo(scripted, plist, records)
    media_ok(scripted, wav(2.0))
    dest, catalog = small_disk / "archive", tmp_path / "cat.db"
    first = cli(*plivo_backfill(quick_config(), dest), "--catalog", str(catalog))
    assert first.exit_code == 0, first.output
    remount(small_disk, "ro")
    try:
        v = cli("verify", "--dest", str(dest), "--catalog", str(catalog))
        assert v.exit_code == 0 and "recordings=3 " in v.output, v.output
        c = cli("custody", "verify", "--dest", str(dest), "--catalog", str(catalog))
        assert c.exit_code == 0, c.output
        e = cli("export", "--dest", str(dest), "--out", str(tmp_path / "e"))
        assert e.exit_code == 1 and "custody event was not logged" in e.output + e.stderr, e.output
        assert len(list((tmp_path / "e").rglob("*.json"))) >= 3  # the export is all there
    finally:
        remount(small_disk, "rw")


def test_a_full_disk_under_the_catalog_fails_the_run_lock_as_catalog_unavailable(small_disk) -> None:
    """The catalog's disk full (its WAL grew back into the room): taking the run lock cannot
    write the lock file. That is the catalog being unavailable (exit 3), not a traceback."""
    from archiver.errors import CatalogUnavailable
    from archiver.locking import RunLock

    lock = RunLock(str(small_disk / "cat.db"), "/dest", "plivo", "MA1")
    with lock:
        pass  # the lock file exists, empty, as a run leaves it
    with open(small_disk / "filler", "wb") as fh, contextlib.suppress(OSError):
        while True:  # the rest of the disk
            fh.write(b"\0" * 65536)
            fh.flush()
    with pytest.raises(CatalogUnavailable, match="cannot take the run lock"):
        lock.__enter__()
    (small_disk / "filler").unlink()
    with lock:  # room again: it is taken as before
        pass


@pytest.mark.parametrize("out", ["audit.zip", "audit"])
def test_an_export_that_fills_its_disk_stops_and_leaves_nothing(
    cli, tmp_path, scripted, plivo_at, quick_config, small_disk, out
) -> None:
    """The auditor's USB stick is too small: exit 3 naming the place, no traceback, and
    nothing half-written left on it (a .part, a .partial- folder)."""
    plist = plivo_at(scripted)
    records = [plivo_record(scripted, f"r-{i:02d}", start_ms=T0 + i * 1000, seconds=20.0) for i in range(6)]
    serve_plivo(scripted, plist, records)
    media_ok(scripted, wav(20.0))  # 6 x 320 kB: more than the 1 MiB disk holds
    dest, catalog = tmp_path / "archive", tmp_path / "cat.db"
    assert cli(*plivo_backfill(quick_config(), dest), "--catalog", str(catalog)).exit_code == 0
    r = cli("export", "--dest", str(dest), "--out", str(small_disk / out), "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == doc["exit_code"] == 3, r.output
    assert f"cannot write the export to {small_disk / out}: No space left on device" in doc["error"]
    assert list(small_disk.iterdir()) == []
