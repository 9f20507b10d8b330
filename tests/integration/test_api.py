"""archiver.api inside a host process: no SystemExit, the host's logging left alone, a
RunResult back."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
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
