from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.catalog import MIGRATIONS, Catalog, Scope
from archiver.errors import ConfigError
from archiver.models import Outcome, scope_prefix
from archiver.runner import GroupTracker

S = Scope("/dest", "plivo", "MA1")
OTHER = Scope("/dest", "catapult", "u-1")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 2, tzinfo=UTC)

Open = Callable[..., Catalog]


@pytest.fixture
def opened() -> Iterator[Open]:
    """``Catalog(...)`` that is closed after the test (an unclosed SQLite connection is a
    ResourceWarning, an error under filterwarnings=error, on Python 3.13)."""
    catalogs: list[Catalog] = []

    def open_(path: str = ":memory:") -> Catalog:
        catalogs.append(Catalog(path))
        return catalogs[-1]

    yield open_
    for db in catalogs:
        db.close()


def test_new_catalog_is_at_the_latest_schema(tmp_path: Path, opened: Open) -> None:
    db = opened(str(tmp_path / "c.db"))
    assert db.schema_version == len(MIGRATIONS)
    with closing(sqlite3.connect(tmp_path / "c.db")) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    Catalog(str(path)).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    con.close()
    with pytest.raises(ConfigError, match="upgrade archiver"):
        Catalog(str(path))


def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path: Path, opened: Open) -> None:
    path = str(tmp_path / "c.db")
    db = opened(path)
    db.mark_archived(S, "r1", sidecar_key="k.json", sha256="ab", size=1, started_at=T0)
    db.close()
    again = opened(path)
    assert again.get(S, "r1").state == "archived"  # type: ignore[union-attr]


def test_failures_count_up_and_stop_being_retried_at_the_limit(opened: Open) -> None:
    db = opened(":memory:")
    for expected in (1, 2, 3):
        assert db.mark_unsettled(S, "r1", "failed", "fetch", "HTTP 503", T0) == expected
    assert db.unsettled(S, max_attempts=4) == ["r1"]
    assert db.unsettled(S, max_attempts=3) == []
    assert db.unsettled(OTHER, max_attempts=9) == []  # scoped by provider account + dest


def test_pending_does_not_count_as_a_failure_and_archiving_settles(opened: Open) -> None:
    db = opened(":memory:")
    db.mark_unsettled(S, "p1", "pending", "provider", "saving", T0)
    db.mark_unsettled(S, "p1", "pending", "provider", "saving", T0)
    assert db.get(S, "p1").attempts == 0  # type: ignore[union-attr]
    db.mark_archived(S, "p1", sidecar_key="p1.json", sha256="aa", size=3, started_at=T0)
    assert db.unsettled(S, 5) == []
    # A late failure report never demotes an archived recording.
    db.mark_unsettled(S, "p1", "failed", "fetch", "boom", T0)
    assert db.get(S, "p1").state == "archived"  # type: ignore[union-attr]


def test_unsettled_by_range(opened: Open) -> None:
    db = opened(":memory:")
    db.mark_unsettled(S, "in", "failed", "fetch", "x", datetime(2024, 1, 1, 12, tzinfo=UTC))
    db.mark_unsettled(S, "out", "failed", "fetch", "x", datetime(2024, 1, 3, tzinfo=UTC))
    db.mark_unsettled(S, "unknown", "failed", "get", "x", None)
    assert db.unsettled(S, 5, T0, T1) == ["in", "unknown"]


def test_windows_and_watermarks(opened: Open) -> None:
    db = opened(":memory:")
    assert not db.window_done(S, T0, T1)
    db.finish_window(S, T0, T1)
    assert db.window_done(S, T0, T1) and not db.window_done(OTHER, T0, T1)
    assert db.watermark(S) is None
    db.set_watermark(S, T1)
    db.set_watermark(S, datetime(2024, 1, 2, 5, 6, 7, 123456, tzinfo=UTC))
    assert db.watermark(S) == datetime(2024, 1, 2, 5, 6, 7, 123456, tzinfo=UTC)


def test_last_success_ignores_failed_runs(opened: Open) -> None:
    db = opened(":memory:")
    db.start_run("a", "run", S, T0)
    db.finish_run("a", 0, {})
    first = db.last_success(S)
    db.start_run("b", "run", S, T1)
    db.finish_run("b", 3, {})
    assert first is not None and db.last_success(S) == first


def test_group_tracker_finishes_a_window_only_when_closed_and_drained() -> None:
    done: list[str] = []
    t = GroupTracker(done.append)
    t.add("w1", "a")
    t.add("w1", "b")
    t.add("w2", "b")  # listed again in the next window: it belongs to w1
    t.completed(Outcome("a", "archived"))
    t.close("w1")
    assert done == []
    t.completed(Outcome("b", "failed"))
    assert done == ["w1"]
    t.close("w2")  # nothing of its own left
    assert done == ["w1", "w2"]


def test_schema_3_makes_final_failures_of_older_catalogs_unavailable(tmp_path: Path, opened: Open) -> None:
    path = tmp_path / "c.db"
    con = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:2], start=1):
        con.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    rows = [
        ("err", "provider", "the provider marked the recording as 'error'"),
        ("typo", "get", "get recording typo: HTTP 404 (not-found: recording-not-found)"),
        ("media", "fetch", "media of media: HTTP 404 (NoSuchKey)"),  # stays failed: retried
        ("flaky", "get", "get recording flaky: HTTP 503 (busy)"),
    ]
    for rid, stage, error in rows:
        con.execute(
            "INSERT INTO recordings (dest, provider, account, recording_id, state, attempts, "
            "last_error, last_stage, updated_at) VALUES (?,?,?,?, 'failed', 5, ?, ?, 'x')",
            (*S.key(), rid, error, stage),
        )
    con.close()
    db = opened(str(path))
    states = {rid: db.get(S, rid).state for rid, _, _ in rows}  # type: ignore[union-attr]
    assert states == {"err": "unavailable", "typo": "unavailable", "media": "failed", "flaky": "failed"}
    assert [k.recording_id for k in db.given_up(S, 5)] == ["flaky", "media"]
    assert db.unsettled(S, 6) == ["flaky", "media"]


def test_schema_5_keeps_every_recording_and_files_them_by_key(tmp_path: Path, opened: Open) -> None:
    path = tmp_path / "c.db"
    con = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:4], start=1):
        con.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    con.execute(
        "INSERT INTO recordings (dest, provider, account, recording_id, state, started_at, sidecar_key, "
        "sha256, bytes, attempts, updated_at) VALUES (?,?,?, 'kept', 'archived', '2024-01-02T03:04:05Z', "
        "'k.json', 'ab', 7, 0, 'x')",
        S.key(),
    )
    con.execute(
        "INSERT INTO recordings (dest, provider, account, recording_id, state, attempts, last_error, "
        "last_stage, updated_at) VALUES (?,?,?, 'retry', 'failed', 2, 'boom', 'fetch', 'x')",
        S.key(),
    )
    con.close()
    db = opened(str(path))
    assert db.schema_version == len(MIGRATIONS) == 5
    kept, retry = db.get(S, "kept"), db.get(S, "retry")
    assert kept is not None and kept.state == "archived"
    assert retry is not None and (retry.state, retry.attempts, retry.last_error) == ("failed", 2, "boom")
    assert db.unsettled(S, 5) == ["retry"]
    con = sqlite3.connect(path)
    try:
        (sql,) = con.execute("SELECT sql FROM sqlite_master WHERE name = 'recordings'").fetchone()
        indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        con.close()
    assert "WITHOUT ROWID" in sql and "recordings_state" in indexes


def test_forget_keeps_archived_unless_asked(tmp_path: Path, opened: Open) -> None:
    db = opened(str(tmp_path / "c.db"))
    db.mark_archived(S, "done", sidecar_key="k.json", sha256="x", size=1, started_at=T0)
    db.mark_unsettled(S, "bad", "failed", "fetch", "boom")
    db.mark_unsettled(OTHER, "bad", "failed", "fetch", "boom")
    assert [k.recording_id for k in db.forget(S, ["done", "bad", "nope", "bad"])] == ["bad"]
    assert db.get(S, "bad") is None and db.get(OTHER, "bad") is not None  # only this scope
    assert db.get(S, "done") is not None
    assert [k.state for k in db.forget(S, ["done"], archived=True)] == ["archived"]
    assert db.get(S, "done") is None


def test_group_tracker_does_not_wait_for_an_outcome_that_came_before_the_listing() -> None:
    # A remembered id (retried by id, or reported as given up) is settled before the overlap
    # lists it again; the runner does not process it twice, so the window must not wait for it.
    done: list[str] = []
    t = GroupTracker(done.append)
    t.completed(Outcome("given-up", "failed", stage="retry-limit"))
    t.completed(Outcome("lost", "failed", stage="internal", remembered=False))
    t.add("w1", "given-up")
    t.close("w1")
    assert done == ["w1"]
    t.add("w2", "lost")  # the catalog was not told of it: its window stays unfinished
    t.close("w2")
    assert done == ["w1"]


def test_scope_prefix() -> None:
    default = "{provider}/{account}/{started:%Y}/{recording_id}.{ext}"
    assert scope_prefix(default, "plivo", "MA1") == "plivo/MA1/"
    assert scope_prefix("calls/{provider}/{account}/{recording_id}.{ext}", "p", "a") == "calls/p/a/"
    assert scope_prefix("{started:%Y}/{provider}/{account}/{recording_id}.{ext}", "p", "a") == ""
    assert scope_prefix("{provider}/{recording_id}.{ext}", "p", "a") == ""


def archived_on_disk(path: Path) -> list[str]:
    with sqlite3.connect(path) as con:
        return [r[0] for r in con.execute("SELECT recording_id FROM recordings WHERE state='archived'")]


def windows_on_disk(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as con:
        return list(con.execute("SELECT since, until FROM windows ORDER BY since"))


def test_archived_rows_commit_in_batches_after_the_barrier(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    events: list[str] = []
    db = Catalog(str(path), barrier=lambda: events.append(f"barrier with {archived_on_disk(path)}"))
    db.BATCH_ROWS, db.BATCH_SECONDS = 3, 3600.0
    for i in range(2):
        db.mark_archived(S, f"r-{i}", sidecar_key=f"k/r-{i}.json", sha256=None, size=1, started_at=T0)
    assert archived_on_disk(path) == [] and events == []  # waiting for the batch
    assert db.get(S, "r-1") is not None and db.get(S, "r-1").state == "archived"  # seen already
    db.mark_archived(S, "r-2", sidecar_key="k/r-2.json", sha256=None, size=1, started_at=T0)
    assert events == ["barrier with []"]  # durable first, then claimed
    assert sorted(archived_on_disk(path)) == ["r-0", "r-1", "r-2"]
    # A finished window waits with the batch (one transaction, not one per window), and any
    # other statement commits what waits first: a window never finishes before its recordings.
    db.mark_archived(S, "r-3", sidecar_key="k/r-3.json", sha256=None, size=1, started_at=T0)
    db.finish_window(S, T0, T1)
    assert "r-3" not in archived_on_disk(path) and windows_on_disk(path) == [] and len(events) == 1
    assert db.window_done(S, T0, T1)
    assert "r-3" in archived_on_disk(path) and len(windows_on_disk(path)) == 1 and len(events) == 2
    db.mark_archived(S, "r-4", sidecar_key="k/r-4.json", sha256=None, size=1, started_at=T0)
    db.finish_window(S, T1, T1 + (T1 - T0))
    db.close()
    assert "r-4" in archived_on_disk(path) and len(windows_on_disk(path)) == 2 and len(events) == 3


def test_a_window_waiting_with_a_batch_is_not_finished_when_its_barrier_fails(tmp_path: Path) -> None:
    from archiver.errors import StorageError

    path = tmp_path / "c.db"

    def refuse() -> None:
        raise StorageError("the destination's folders cannot be fsynced")

    db = Catalog(str(path), barrier=refuse)
    db.BATCH_ROWS, db.BATCH_SECONDS = 64, 3600.0
    db.mark_archived(S, "r-0", sidecar_key="k/r-0.json", sha256=None, size=1, started_at=T0)
    db.finish_window(S, T0, T1)
    with pytest.raises(StorageError):
        db.flush()
    db.close()  # settle() logs the failure
    assert archived_on_disk(path) == [] and windows_on_disk(path) == []  # listed again next run


def test_a_lookup_does_not_commit_the_batch(tmp_path: Path) -> None:
    # The driver looks up every listed recording: were each lookup a commit (and a barrier),
    # batches would be a few rows each.
    path = tmp_path / "c.db"
    events: list[str] = []
    db = Catalog(str(path), barrier=lambda: events.append("barrier"))
    db.BATCH_ROWS, db.BATCH_SECONDS = 64, 3600.0
    db.mark_unsettled(S, "r-failed", "failed", "fetch", "HTTP 500", T0)
    db.mark_archived(S, "r-0", sidecar_key="k/r-0.json", sha256=None, size=1, started_at=T0)
    known = db.get(S, "r-failed")
    assert known is not None and known.state == "failed" and known.attempts == 1
    assert db.get(S, "r-new") is None
    assert db.get(S, "r-0") is not None and db.get(S, "r-0").state == "archived"
    assert events == [] and archived_on_disk(path) == []  # still waiting, nothing claimed
    db.close()
    assert events == ["barrier"] and archived_on_disk(path) == ["r-0"]


def test_a_failing_barrier_claims_nothing(tmp_path: Path) -> None:
    from archiver.errors import StorageError

    path = tmp_path / "c.db"

    def refuse() -> None:
        raise StorageError("fsync failed")

    db = Catalog(str(path), barrier=refuse)
    db.BATCH_ROWS = 1
    with pytest.raises(StorageError):
        db.mark_archived(S, "r-0", sidecar_key="k/r-0.json", sha256=None, size=1, started_at=T0)
    db.close()  # logged, not raised
    assert archived_on_disk(path) == []


def test_a_new_catalog_and_its_wal_are_its_owners_alone_whatever_the_umask(tmp_path) -> None:
    import os
    import stat

    from archiver.catalog import Catalog, Scope

    old = os.umask(0o022)
    try:
        db = Catalog(str(tmp_path / "state" / "cat.db"))
        db.mark_archived(
            Scope("file:///a", "plivo", "MA1"),
            "r-1",
            sidecar_key="k.json",
            sha256="0" * 64,
            size=1,
            started_at=None,
        )
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "state").iterdir()}
        db.close()
    finally:
        os.umask(old)
    assert modes["cat.db"] == 0o600 and modes.get("cat.db-wal", 0o600) == 0o600, modes
