"""The first hour of a new user (issue 9, item 4): output paths checked before any work,
``--report -``, a doctor that creates nothing, the shipped example config, ``sim --env-file``,
global options after the subcommand, ``--number`` in either form, and what logs and metrics
say at the end of a run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from archiver.sim import Simulator

BACKFILL = ("backfill", "--provider", "plivo", "--since", "2024-01-01", "--until", "2024-03-01")


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this user cannot create files in (root ignores modes: /sys refuses even root)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


@pytest.mark.parametrize(
    ("option", "where"),
    [
        ("--report", "missing/run.json"),
        ("--report", "a-folder"),
        ("--report", "a-file/run.json"),
        ("--report", "UNWRITABLE/run.json"),
        ("--metrics-file", "missing/archiver.prom"),
        ("--metrics-file", "a-folder"),
        ("--metrics-file", "UNWRITABLE/archiver.prom"),
    ],
)
def test_a_bad_output_path_exits_2_before_any_request(
    cli, tmp_path: Path, use_sim, option: str, where: str
) -> None:
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    path = where.replace("UNWRITABLE", str(unwritable_folder(tmp_path)))
    path = path if path.startswith("/") else str(tmp_path / path)
    with Simulator(recordings=4, seed=3) as sim:
        use_sim(sim)
        r = cli(*BACKFILL, "--dest", str(tmp_path / "archive"), option, path)
        assert r.exit_code == 2, r.output
        assert "rror" in r.output and option in r.output and "Traceback" not in r.output
        assert sum(sim.stats.values()) == 0  # not one provider request
    assert not (tmp_path / "archive").exists()


def test_verify_report_path_is_checked_before_reading_the_archive(cli, tmp_path: Path, sim_env) -> None:
    dest = tmp_path / "archive"
    assert cli(*BACKFILL, "--dest", str(dest)).exit_code == 0
    sidecar = next(dest.rglob("*.json"))
    sidecar.write_text("not json")  # verify would find this, if it got that far
    r = cli("verify", "--dest", str(dest), "--report", str(tmp_path / "missing" / "v.json"))
    assert r.exit_code == 2 and "error: --report" in r.output
    assert "unreadable" not in r.output


def test_report_dash_writes_the_json_report_to_stdout(cli, tmp_path: Path, sim_env) -> None:
    r = cli(*BACKFILL, "--dest", str(tmp_path / "archive"), "--report", "-")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)  # stdout is the report and nothing else
    assert doc["command"] == "backfill" and doc["counts"]["archived"] > 0
    assert f"archived={doc['counts']['archived']}" in r.stderr
    v = cli("verify", "--dest", str(tmp_path / "archive"), "--report", "-")
    assert v.exit_code == 0
    assert json.loads(v.stdout)["dest"].endswith("archive")
    assert f"recordings={doc['counts']['archived']}" in v.stderr


def test_doctor_creates_no_catalog_it_checks(cli, tmp_path: Path, sim_env) -> None:
    catalog = tmp_path / "state" / "deeper" / "catalog.db"
    r = cli("doctor", "--dest", str(tmp_path / "a"), "--catalog", str(catalog))
    assert "does not exist yet" in r.output, r.output
    assert not (tmp_path / "state").exists()
