"""``backfill --shard I/N``: N hosts split one range without a scheduler, exactly once."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.sim import Simulator


def test_two_shards_cover_the_range_exactly_once(backfill, use_sim, freeze, tmp_path: Path) -> None:
    freeze(datetime(2024, 6, 1, tzinfo=UTC))
    with Simulator(recordings=30, seed=72) as sim:
        use_sim(sim)
        dest, catalog = str(tmp_path / "a"), str(tmp_path / "cat.db")
        first = backfill("plivo", dest, "--catalog", catalog, "--shard", "1/2")
        media_after_first = sim.stats["plivo.media.requests"]
        second = backfill("plivo", dest, "--catalog", catalog, "--shard", "2/2")
        assert first.exit_code in (0, 1) and second.exit_code in (0, 1), first.output + second.output
        n1 = int(first.output.split("archived=")[1].split()[0])
        n2 = int(second.output.split("archived=")[1].split()[0])
        downloadable = [r for r in sim.plivo if r.state == "complete"]
        assert n1 > 0 and n2 > 0 and n1 + n2 == len(downloadable)
        # Each recording downloaded once, by one shard: no overlap, no gap.
        assert sim.stats["plivo.media.requests"] == len(downloadable) == media_after_first + n2
        assert len(list(Path(dest).rglob("*.json"))) == len(downloadable)
        # Between them the shards finished every window: the whole range has nothing left.
        whole = backfill("plivo", dest, "--catalog", catalog)
        assert "listed=0 " in whole.output and whole.exit_code == 0, whole.output


def test_bad_shards_and_catapult_are_refused_before_anything(backfill, sim_env, tmp_path: Path) -> None:
    for bad in ("0/2", "3/2", "1", "a/b", "1/0"):
        r = backfill("plivo", str(tmp_path / "a"), "--shard", bad)
        assert r.exit_code == 2 and "bad --shard" in r.output, (bad, r.output)
    r = backfill("catapult", str(tmp_path / "a"), "--shard", "1/2")
    assert r.exit_code == 2 and "--shard needs a provider that lists by date" in r.output, r.output
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").rglob("*.json"))


def test_dask_without_a_scheduler_says_what_to_set(backfill, sim_env, tmp_path: Path) -> None:
    r = backfill("plivo", str(tmp_path / "a"), "--executor", "dask")
    assert r.exit_code == 2 and "--executor dask needs a scheduler" in r.output, r.output


def test_dask_without_the_extra_says_what_to_install(
    backfill, sim_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed: import fails
    monkeypatch.delitem(sys.modules, "archiver.cluster", raising=False)
    r = backfill("plivo", str(tmp_path / "a"), "--executor", "dask", "--scheduler", "local:1")
    assert r.exit_code == 2 and "pip install 'archiver[dask]'" in r.output, r.output
    assert not (tmp_path / "a").exists()


def test_a_recording_that_failed_in_a_shard_is_retried_by_that_shard(
    backfill, use_sim, freeze, tmp_path: Path
) -> None:
    """One catalog per host: whichever shard listed the recording remembers its failure and
    retries it next time; no other shard ever heard of it."""
    freeze(datetime(2024, 6, 1, tzinfo=UTC))
    with Simulator(recordings=30, seed=72) as probe:
        complete = [r.id for r in probe.plivo if r.state == "complete"]
    with Simulator(
        recordings=30, seed=72, faults=",".join(f"garbled:{rid}*1" for rid in complete[:4])
    ) as sim:
        use_sim(sim)
        dest = str(tmp_path / "a")
        outputs = [
            backfill("plivo", dest, "--catalog", str(tmp_path / f"host{i}.db"), "--shard", f"{i}/2").output
            for i in (1, 2)
        ]
        assert sum(int(o.split("failed=")[1].split()[0]) for o in outputs) == 4, outputs
        again = [
            backfill("plivo", dest, "--catalog", str(tmp_path / f"host{i}.db"), "--shard", f"{i}/2")
            for i in (1, 2)
        ]
        assert all(r.exit_code in (0, 1) and " failed=0 " in r.output for r in again), [
            r.output for r in again
        ]
        assert sum(int(r.output.split("archived=")[1].split()[0]) for r in again) == 4
        assert len(list(Path(dest).rglob("*.json"))) == len(complete)  # (custody events are .jsonl)


def test_cluster_options_that_cannot_work_are_refused_before_anything(
    backfill, sim_env, tmp_path: Path
) -> None:
    folder = str(tmp_path / "a")
    cases = [
        (["--executor", "dask", "--scheduler", "tcp://10.0.0.5:8786"], "would each write to their own disk"),
        (["--scheduler", "tcp://10.0.0.5:8786"], "go with --executor dask"),
        (["--max-tasks-in-flight", "4"], "go with --executor dask"),
        (["--executor", "dask", "--scheduler", "local:1", "--limit", "3"], "run on the local executor only"),
    ]
    for extra, message in cases:
        r = backfill("plivo", folder, *extra)
        assert r.exit_code == 2 and message in r.output + r.stderr, (extra, r.output)
    assert not (tmp_path / "a").exists()
