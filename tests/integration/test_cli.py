"""The CLI end to end: simulator over loopback, local folders and moto's S3 server."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from archiver.sim import Simulator


def sidecars(root: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in root.rglob("*.json")}


def assert_true_copies(sim: Simulator, root: Path, provider: str) -> dict[str, dict]:
    docs = sidecars(root / provider)
    source = {r.id: r for r in (sim.catapult if provider == "catapult" else sim.plivo)}
    for rid, doc in docs.items():
        f = doc["files"][0]
        data = (root / f["key"]).read_bytes()
        assert data == sim.media_bytes(source[rid])
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
        assert doc["provider_record"] == source[rid].doc
        assert f["duration_seconds"] == pytest.approx(source[rid].duration, abs=0.3)
    return docs


def test_plivo_backfill_two_months_local(
    backfill, sim: Simulator, sim_env: dict, cli, tmp_path: Path
) -> None:
    dest = tmp_path / "arch"
    report = tmp_path / "report.json"
    result = backfill("plivo", str(dest), "--report", str(report))
    assert result.exit_code == 0, result.output
    assert (
        result.output.strip().splitlines()[-1]
        == "listed=30 archived=30 skipped=0 pending=0 failed=0 unavailable=0"
    )
    docs = assert_true_copies(sim, dest, "plivo")
    assert set(docs) == {r.id for r in sim.plivo}
    rep = json.loads(report.read_text())
    assert rep["counts"] == {
        "listed": 30,
        "archived": 30,
        "skipped": 0,
        "pending": 0,
        "failed": 0,
        "unavailable": 0,
    }
    assert rep["bytes_downloaded"] == sum(len(sim.media_bytes(r)) for r in sim.plivo)
    assert sim.media_auth_seen == []
    assert not list(dest.rglob(".archiver-tmp-*")) and not list(dest.rglob("*.part"))
    # The second run knows every window is finished: no listing, no download.
    before = dict(sim.stats)
    again = backfill("plivo", str(dest))
    assert again.exit_code == 0
    assert "listed=0 archived=0" in again.output
    assert sim.stats == before
    # Without its catalog, the sidecars still say what is done: listed again, nothing fetched.
    for db in Path(os.environ["XDG_STATE_HOME"]).rglob("catalog.db*"):
        db.unlink()
    third = backfill("plivo", str(dest))
    assert "listed=30 archived=0 skipped=30" in third.output
    assert sim.stats["plivo.media.requests"] == before["plivo.media.requests"]


def test_catapult_backfill_into_s3(backfill, sim: Simulator, sim_env: dict, s3, cli, tmp_path: Path) -> None:
    result = backfill("catapult", f"s3://{s3.bucket}/rec")
    complete = [r for r in sim.catapult if r.state == "complete"]
    errors = [r for r in sim.catapult if r.state == "error"]
    pending = [r for r in sim.catapult if r.state in ("recording", "saving")]
    assert result.exit_code == 1  # the provider's 'error' recordings: unavailable, news this first time
    assert result.output.strip().splitlines()[-1] == (
        f"listed=30 archived={len(complete)} skipped=0 pending={len(pending)} failed=0 "
        f"unavailable={len(errors)}"
    )
    keys = [
        o["Key"]
        for o in s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]
        if "/_custody/" not in o["Key"] and "/_layouts/" not in o["Key"]
    ]
    assert len(keys) == 2 * len(complete)
    for rec in complete:
        key = next(k for k in keys if k.endswith(f"/{rec.id}.wav"))
        body = s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        assert body == sim.media_bytes(rec)
        side = json.loads(s3.client.get_object(Bucket=s3.bucket, Key=key[:-4] + ".json")["Body"].read())
        assert side["files"][0]["sha256"] == hashlib.sha256(body).hexdigest()
        assert key == f"rec/catapult/{sim_env['CATAPULT_USER_ID']}/{rec.started:%Y/%m/%d}/{rec.id}.wav"


def test_bad_recordings_are_reported_by_id_and_leave_nothing(
    backfill, sim_env: dict, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_sim
) -> None:
    with Simulator(recordings=10, seed=5) as probe:
        victims = [r.id for r in probe.plivo[:4]]
    faults = f"html:{victims[0]},404:{victims[1]},empty:{victims[2]},truncate:{victims[3]}"
    with Simulator(recordings=10, seed=5, faults=faults) as sim:
        use_sim(sim)
        monkeypatch.setenv("ARCHIVER_CONFIG", str(_fast_retry_config(tmp_path)))
        dest = tmp_path / "arch"
        report = tmp_path / "r.json"
        result = backfill("plivo", str(dest), "--report", str(report))
        assert result.exit_code == 1, result.output
        assert "listed=10 archived=6 skipped=0 pending=0 failed=4" in result.output
        failures = {f["recording_id"]: f for f in json.loads(report.read_text())["failures"]}
        assert set(failures) == set(victims)
        assert "HTML page" in failures[victims[0]]["error"]
        assert "404" in failures[victims[1]]["error"]
        assert "empty body" in failures[victims[2]]["error"]
        assert "cut short" in failures[victims[3]]["error"] or "Protocol" in failures[victims[3]]["error"]
        assert all(f["stage"] == "fetch" for f in failures.values())
        names = [p.name for p in dest.rglob("*") if p.is_file()]
        assert not any(v in n for v in victims for n in names)
        assert not any(n.startswith(".") for n in names)  # no temp or partial files


def _fast_retry_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "fast.toml"
    cfg.write_text("[http]\nmax_attempts = 2\ntimeout_seconds = 2.0\n")
    return cfg


def test_transient_media_faults_are_retried_to_a_true_copy(
    backfill, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_sim
) -> None:
    with Simulator(
        recordings=6, seed=9, faults="truncate:media*2,503:media*2,429:media*1,stall:media*1", stall_seconds=3
    ) as sim:
        use_sim(sim)
        cfg = tmp_path / "c.toml"
        cfg.write_text("[http]\ntimeout_seconds = 1.0\n[catapult]\nrequests_per_second = 500\n")
        result = backfill("plivo", str(tmp_path / "a"), "--config", str(cfg))
        assert result.exit_code == 0, result.output
        assert "archived=6" in result.output
        assert_true_copies(sim, tmp_path / "a", "plivo")
        assert sim.stats["plivo.media.requests"] == 6 + 6  # every fault cost exactly one retry


def test_fetch_named_recordings(sim: Simulator, sim_env: dict, cli, tmp_path: Path) -> None:
    wanted = [r.id for r in sim.catapult if r.state == "complete"][:2]
    media = sim.stats["catapult.media.requests"]
    args = [*wanted, wanted[0], "rec-missing"]  # one named twice: archived once
    result = cli("fetch", "--provider", "catapult", *args, "--dest", str(tmp_path / "a"))
    assert result.exit_code == 1  # an id the provider does not have: unavailable, news this first time
    assert "listed=3 archived=2 skipped=0 pending=0 failed=0 unavailable=1" in result.output
    assert sim.stats["catapult.media.requests"] == media + 2
    assert set(sidecars(tmp_path / "a")) == set(wanted)


def test_unsafe_recording_id_is_refused(
    backfill, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_sim
) -> None:
    # On the command line: a usage error, nothing done.
    result = cli("fetch", "--provider", "catapult", "../../etc/x", "--dest", str(tmp_path / "a"))
    assert result.exit_code == 2 and "unsafe recording id" in result.output
    # From the provider's own listing: that recording fails, the others are archived.
    with Simulator(recordings=8, seed=2, faults="unsafe-id") as sim:
        use_sim(sim)
        for provider in ("catapult", "plivo"):
            out = tmp_path / provider
            result = backfill(provider, str(out))
            assert "unsafe recording id '../../etc/x'" in result.output
            assert result.exit_code == 1
            assert all(out in p.parents for p in tmp_path.rglob("*") if p.is_file() and provider in str(p))
        assert not (tmp_path.parent / "etc").exists()


def test_usage_errors_exit_2(backfill, sim_env: dict, cli, tmp_path: Path) -> None:
    cases = [
        (["backfill", "--provider", "plivo", "--since", "yesterday", "--dest", str(tmp_path)], "bad date"),
        (
            ["backfill", "--provider", "nope", *backfill.range, "--dest", str(tmp_path)],
            "Invalid value for '--provider'",
        ),
        (["backfill", "--provider", "plivo", *backfill.range, "--dest", "ftp://x/y"], "bad destination"),
        (["backfill", "--provider", "plivo", *backfill.range], "no destination"),
        (
            [
                "backfill",
                "--provider",
                "plivo",
                "--since",
                "2024-03-01",
                "--until",
                "2024-01-01",
                "--dest",
                str(tmp_path),
            ],
            "must be before",
        ),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)


def test_missing_credentials_exit_2(backfill, cli, tmp_path: Path) -> None:
    result = backfill("plivo", str(tmp_path))
    assert result.exit_code == 2
    assert "PLIVO_AUTH_ID, PLIVO_AUTH_TOKEN" in result.output


def test_wrong_token_exits_3_quickly_and_is_never_echoed(
    backfill, sim: Simulator, sim_env: dict, cli, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", "wrong-token-4f8e1a")
    report = tmp_path / "r.json"
    result = cli(
        "-vvv",
        "--log-format",
        "json",
        "backfill",
        "--provider",
        "plivo",
        *backfill.range,
        "--dest",
        str(tmp_path / "a"),
        "--report",
        str(report),
    )
    assert result.exit_code == 3
    assert "refused the credentials" in result.output
    assert "wrong-token-4f8e1a" not in result.output
    assert "wrong-token-4f8e1a" not in report.read_text()
    assert sim.stats["plivo.unauthorized"] == 1


def test_unreachable_provider_exits_3(backfill, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLIVO_BASE_URL", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("PLIVO_AUTH_ID", "MA0000000000000000")
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", "x-token")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[http]\nmax_attempts = 2\n")
    result = backfill("plivo", str(tmp_path), "--config", str(cfg))
    assert result.exit_code == 3
    assert "ConnectError" in result.output


def test_dry_run_writes_nothing(backfill, sim: Simulator, sim_env: dict, cli, tmp_path: Path) -> None:
    dest = tmp_path / "never"
    result = backfill("plivo", str(dest), "--dry-run", "--limit", "5")
    assert result.exit_code == 0
    assert result.output.count("would archive") == 5
    assert not dest.exists()
    assert sim.stats["plivo.media.requests"] == 0
    assert not list(Path(os.environ["XDG_STATE_HOME"]).rglob("catalog.db*"))  # no catalog made either


def test_every_command_has_help_with_an_example_and_is_in_readme(cli) -> None:
    from archiver.cli import main

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name in main.commands:
        result = cli(name, "--help")
        assert result.exit_code == 0
        assert "Example" in result.output, name
        assert f"archiver {name}" in readme, name


def test_python_dash_m_subprocess(sim: Simulator, sim_env: dict, tmp_path: Path) -> None:
    env = {**os.environ, **sim_env}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "archiver",
            "--log-format",
            "json",
            "fetch",
            "--provider",
            "plivo",
            sim.plivo[0].id,
            "--dest",
            str(tmp_path / "a"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^listed=1 archived=1 skipped=0 pending=0 failed=0 unavailable=0$", proc.stdout, re.M)
    assert sim_env["PLIVO_AUTH_TOKEN"] not in proc.stdout + proc.stderr


def test_catapult_sidecars_carry_the_calls_numbers(
    backfill, sim: Simulator, sim_env: dict, cli, tmp_path: Path
) -> None:
    dest = tmp_path / "a"
    backfill("catapult", str(dest))
    complete = [r for r in sim.catapult if r.state == "complete"]
    gone = [r for r in complete if r.extra["call"] is None]
    assert gone and len(gone) < len(complete)  # both cases are exercised
    for rec in complete:
        doc = json.loads(next(dest.rglob(f"{rec.id}.json")).read_text())["recording"]
        call = rec.extra["call"] or {}
        assert (doc["from_number"], doc["to_number"], doc["direction"]) == (
            call.get("from"),
            call.get("to"),
            call.get("direction"),
        )
    assert sim.stats["catapult.get"] == len(complete)  # one /calls request per archived recording


def test_unreadable_audio_fails_at_probe_and_is_archived_by_the_next_run(
    backfill, cli, tmp_path: Path, monkeypatch, use_sim
) -> None:
    """A body with audio magic bytes but no decodable audio is not archived (it could
    otherwise be taken for a verified copy); the next run, served good media, archives it."""
    dest, report = tmp_path / "a", tmp_path / "report.json"
    with Simulator(recordings=3, seed=61) as probe:
        victim = probe.plivo[1].id
    with Simulator(recordings=3, seed=61, faults=f"garbled:{victim}") as sim:
        use_sim(sim)
        r = backfill("plivo", str(dest), "--report", str(report))
        assert r.exit_code == 1 and "archived=2" in r.output and "failed=1" in r.output
        failure = json.loads(report.read_text())["failures"]
        assert [(f["recording_id"], f["stage"]) for f in failure] == [(victim, "probe")]
        assert victim in failure[0]["error"] and "is not the recording" in failure[0]["error"]
        assert not list(dest.rglob(f"{victim}.*"))
    with Simulator(recordings=3, seed=61) as sim:
        use_sim(sim)
        r = backfill("plivo", str(dest))
        assert r.exit_code == 0 and "archived=1" in r.output
        doc = json.loads(next(dest.rglob(f"{victim}.json")).read_text())
        original = doc["files"][0]
        assert original["probe_error"] is None and original["duration_seconds"] > 0
        stored = (dest / original["key"]).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == original["sha256"]


def test_reindex_rebuilds_the_catalog_from_sidecars(
    backfill, sim: Simulator, sim_env: dict, cli, tmp_path: Path
) -> None:
    import sqlite3
    from contextlib import closing

    dest, catalog = tmp_path / "a", tmp_path / "cat.db"
    backfill("plivo", str(dest), "--catalog", str(catalog))
    catalog.unlink()
    (dest / "notes.json").write_text('{"not": "a sidecar"}')
    r = cli("reindex", "--dest", str(dest), "--catalog", str(catalog))
    assert r.exit_code == 0 and "reindexed=30 unreadable=0" in r.output
    with closing(sqlite3.connect(catalog)) as db:
        rows = db.execute("SELECT recording_id, state, sha256 FROM recordings").fetchall()
    assert {rid for rid, _, _ in rows} == {x.id for x in sim.plivo}
    assert all(state == "archived" and sha for _, state, sha in rows)
    # With the catalog rebuilt, listing the range again (other windows) skips everything.
    again = cli(
        "backfill",
        "--provider",
        "plivo",
        *backfill.range,
        "--window",
        "2d",
        "--dest",
        str(dest),
        "--catalog",
        str(catalog),
    )
    assert "listed=30 archived=0 skipped=30" in again.output


def test_reindex_of_a_mistyped_destination_is_refused_and_creates_nothing(cli, tmp_path: Path) -> None:
    r = cli("reindex", "--dest", str(tmp_path / "no-such-archive"), "--catalog", str(tmp_path / "c.db"))
    assert r.exit_code == 2 and "no archive at" in r.stderr and not (tmp_path / "no-such-archive").exists()
