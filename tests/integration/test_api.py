"""archiver.api inside a host process: no SystemExit, the host's logging left alone, a
RunResult back."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver import api
from archiver.config import load_settings
from archiver.errors import ConfigError
from archiver.runner import RunResult
from archiver.sim import Simulator


def test_backfill_in_process_keeps_the_hosts_logging_and_returns_the_result(
    tmp_path: Path, use_sim, freeze
) -> None:
    freeze(datetime(2024, 6, 1, tzinfo=UTC))
    root = logging.getLogger()
    host = logging.StreamHandler()
    before = (list(root.handlers), root.level)
    root.addHandler(host)
    root.setLevel(logging.CRITICAL)
    try:
        with Simulator(recordings=8, seed=61) as sim:
            use_sim(sim)
            flags = {"archive.dest": str(tmp_path / "a"), "archive.catalog": str(tmp_path / "cat.db")}
            settings = load_settings(None, os.environ, flags)
            seen: list[str] = []
            hooks = api.Hooks(started=lambda r: seen.append(r.run_id))
            result = api.backfill(
                settings,
                "plivo",
                datetime(2024, 1, 1, tzinfo=UTC),
                datetime(2024, 3, 1, tzinfo=UTC),
                hooks=hooks,
            )
            assert isinstance(result, RunResult) and seen == [result.run_id]
            assert result.exit_code == 0 and result.counts["archived"] == 8, result.summary()
            assert len(list((tmp_path / "a").rglob("*.json"))) == 8
            # A second call resumes: every window is finished, nothing is listed.
            again = api.backfill(
                settings, "plivo", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
            )
            assert again.listed == 0 and sim.stats["plivo.media.requests"] == 8
            fetched = api.fetch(settings, "plivo", [sim.plivo[0].id])
            assert fetched.counts["skipped"] == 1
        assert root.handlers == [*before[0], host] and root.level == logging.CRITICAL
    finally:
        root.removeHandler(host)
        root.setLevel(before[1])


def test_errors_are_raised_not_exits(tmp_path: Path) -> None:
    settings = load_settings(None, {}, {"archive.dest": str(tmp_path / "a")})
    with pytest.raises(ConfigError, match="credentials missing"):
        api.run(settings, "plivo", since=datetime(2024, 1, 1, tzinfo=UTC))


def test_verify_and_export_in_process(tmp_path: Path, use_sim, freeze) -> None:
    freeze(datetime(2024, 6, 1, tzinfo=UTC))
    with Simulator(recordings=4, seed=62) as sim:
        use_sim(sim)
        flags = {"archive.dest": str(tmp_path / "a"), "archive.catalog": str(tmp_path / "cat.db")}
        settings = load_settings(None, os.environ, flags)
        api.backfill(settings, "plivo", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    checked = api.verify(settings)
    assert (
        checked.recordings == 4 and not checked.findings and checked.dest == str((tmp_path / "a").resolve())
    )
    done = api.export(settings, str(tmp_path / "out.zip"))
    assert done.recordings == 4 and (tmp_path / "out.zip").exists()
    (tmp_path / "file").write_text("x")
    broken = load_settings(None, {}, {"archive.dest": str(tmp_path / "file")})
    with pytest.raises(ConfigError, match="no such folder"):
        api.verify(broken)


def test_verify_or_export_of_a_folder_that_does_not_exist_is_a_usage_error(cli, tmp_path: Path) -> None:
    for args in (["verify"], ["export", "--out", str(tmp_path / "out")]):
        r = cli(*args, "--dest", str(tmp_path / "typo"))
        assert r.exit_code == 2 and "no archive at" in r.output, r.output
    assert not (tmp_path / "typo").exists()


class CountingExecutor:
    """A thread pool of its own, counting what the run hands it."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="elsewhere")
        self.submitted: list[str] = []
        self.ran_on: set[str] = set()

    def submit(self, fn, item, /):  # type: ignore[no-untyped-def]
        self.submitted.append(item.recording_id)

        def run():  # type: ignore[no-untyped-def]
            self.ran_on.add(threading.current_thread().name)
            return fn(item)

        return self.pool.submit(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait, cancel_futures=cancel_futures)


def test_work_runs_on_the_given_executor_and_only_the_driver_touches_the_catalog(
    tmp_path: Path, use_sim, freeze, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The executor seam: what a worker runs never needs the catalog (a Dask worker has
    none), and what the catalog already knows is decided on the driver, never submitted."""
    freeze(datetime(2024, 6, 1, tzinfo=UTC))
    sql_threads: list[str] = []
    connect = sqlite3.connect

    def traced(*args, **kwargs):  # type: ignore[no-untyped-def]
        db = connect(*args, **kwargs)
        db.set_trace_callback(lambda _sql: sql_threads.append(threading.current_thread().name))
        return db

    monkeypatch.setattr(sqlite3, "connect", traced)
    executor = CountingExecutor()
    with Simulator(recordings=8, seed=63) as sim:
        use_sim(sim)
        flags = {"archive.dest": str(tmp_path / "a"), "archive.catalog": str(tmp_path / "cat.db")}
        settings = load_settings(None, os.environ, flags)
        since, until = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
        first = api.backfill(settings, "plivo", since, until, executor=executor)
        assert first.exit_code == 0 and first.counts["archived"] == 8, first.summary()
        assert sorted(executor.submitted) == sorted(r.id for r in sim.plivo)
        assert executor.ran_on and all(n.startswith("elsewhere") for n in executor.ran_on)
        # Known to the catalog: skipped on the driver, nothing handed to a worker.
        again = api.fetch(settings, "plivo", [r.id for r in sim.plivo], executor=executor)
        assert again.counts["skipped"] == 8 and len(executor.submitted) == 8
    executor.shutdown()
    assert sql_threads and set(sql_threads) == {threading.current_thread().name}


def test_a_stop_while_listings_read_ahead_ends_the_feed_quietly(tmp_path: Path, use_sim, freeze) -> None:
    """Ctrl-C or SIGTERM during a backfill sets the stop: the listings read ahead end early,
    and the feed must simply end (not raise, which the runner would report as an internal
    error of the listing and ABORT the run)."""
    import dataclasses

    from archiver.jobs import plan_backfill
    from archiver.runner import GroupTracker
    from archiver.session import archive_session

    freeze(datetime(2024, 6, 1, tzinfo=UTC))
    with Simulator(recordings=30, seed=64) as sim:
        use_sim(sim)
        settings = load_settings(None, os.environ, {"archive.dest": str(tmp_path / "a")})
        job = plan_backfill(
            datetime(2024, 1, 1, tzinfo=UTC),
            datetime(2024, 3, 1, tzinfo=UTC),
            timedelta(days=1),
            date_filter=True,
            revisit=False,
        )
        stop = threading.Event()
        with archive_session(settings, "plivo", force=False, dry_run=True) as session_deps:
            deps = dataclasses.replace(session_deps, stop=stop)
            from archiver.jobs import feed

            items = feed(job, deps, GroupTracker())
            first = next(items)
            stop.set()
            rest = list(items)  # ends, whatever the read-ahead had started
        assert first.recording_id and len(rest) < 30
