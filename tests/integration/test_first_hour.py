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
    missing = str(tmp_path / "missing" / "t.json")
    t = cli("transcode", "--dest", str(dest), "--profile", "flac", "--report", missing)
    assert t.exit_code == 2 and "error: --report" in t.output
    assert not list(dest.rglob("*.flac"))  # nothing encoded first


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


# --- the example config -------------------------------------------------------------------

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "config" / "archiver.example.toml"


def documented_keys(text: str) -> tuple[dict[str, str], set[str]]:
    """(dotted key -> its line) for keys set, and the dotted keys shown commented out."""
    import re

    section = ""
    active: dict[str, str] = {}
    commented: set[str] = set()
    for line in text.splitlines():
        head = re.fullmatch(r"(#\s*)?\[([\w.-]+)\]\s*", line)
        if head:
            section = head.group(2)
            continue
        key = re.match(r"(#\s*)?([a-z_]+)\s*=", line)
        if key:
            dotted = f"{section}.{key.group(2)}"
            if key.group(1):
                commented.add(dotted)
            else:
                active[dotted] = line
    return active, commented


def test_the_example_config_is_valid_true_and_safe_to_copy(tmp_path: Path) -> None:
    import tomllib

    from archiver.config import SCHEMA, load_settings

    text = EXAMPLE.read_text()
    # Loaded by the real loader it changes nothing: every value is the built-in default...
    assert load_settings(str(EXAMPLE), {}, {}) == load_settings(None, {}, {})
    # ...also with a local destination (no Object Lock or legal hold sneaks in).
    local = {"archive.dest": str(tmp_path / "archive")}
    assert load_settings(str(EXAMPLE), {}, local) == load_settings(None, {}, local)
    active, commented = documented_keys(text)
    values = {f"{s}.{k}": v for s, table in tomllib.loads(text).items() for k, v in table.items()}
    for key, (_, default) in SCHEMA.items():
        assert key in active or key in commented, f"{key} is not documented"
        if default is None:
            assert key in commented and key not in active, f"{key} has no default: comment it out"
        else:
            assert values[key] == default, key
    assert set(active) <= set(SCHEMA), set(active) - set(SCHEMA)
    assert "profiles" not in tomllib.loads(text)  # an example profile is commented out


def test_config_example_prints_the_shipped_file(cli, tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    r = cli("config", "example")
    assert r.exit_code == 0
    assert r.output == EXAMPLE.read_text()
    # Package data: a build of the package carries the file `config example` reads.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "archiver", tmp_path / "archiver", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import setuptools; setuptools.setup()",
            "-q",
            "build_py",
            "--build-lib",
            "out",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (tmp_path / "out" / "archiver" / "data" / "archiver.example.toml").read_text() == r.output


# --- sim --env-file -------------------------------------------------------------------------


def test_sim_env_file_appears_whole_once_serving(cli, tmp_path: Path, monkeypatch) -> None:
    import signal
    import subprocess
    import sys
    import time

    env_file = tmp_path / "sim.env"
    sim = subprocess.Popen(
        [sys.executable, "-m", "archiver", "sim", "--recordings", "3", "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists():  # what README's `until [ -f sim.env ]` loop does
            assert sim.poll() is None, sim.communicate()
            assert time.monotonic() < deadline, "the simulator never wrote its env file"
            time.sleep(0.02)
        # The file is there only once complete and serving: use it at once.
        lines = env_file.read_text().splitlines()
        assert lines and all(line.startswith("export ") for line in lines)
        for line in lines:
            key, value = line.removeprefix("export ").split("=", 1)
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("PLIVO_REQUESTS_PER_SECOND", "500")
        r = cli(*BACKFILL, "--dest", str(tmp_path / "archive"))
        assert r.exit_code == 0, r.output
        assert "archived=3" in r.output
    finally:
        sim.send_signal(signal.SIGTERM)
        out, err = sim.communicate(timeout=30)
    assert sim.returncode == 0, err
    assert out == ""  # the export lines went to the file, not stdout
    assert not env_file.exists()  # its URLs are dead: the file goes with them


def test_sim_start_makes_recent_recordings_for_a_nightly_run(cli, tmp_path: Path, monkeypatch) -> None:
    """`archiver sim --start -7d` serves last week's calls: the crontab's `run --since -7d`
    can be tried against it as it is."""
    import signal
    import subprocess
    import sys
    import time

    env_file = tmp_path / "sim.env"
    argv = ["sim", "--recordings", "4", "--start", "-6d", "--days", "5", "--env-file", str(env_file)]
    sim = subprocess.Popen(
        [sys.executable, "-m", "archiver", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists():
            assert sim.poll() is None and time.monotonic() < deadline, sim.communicate()
            time.sleep(0.02)
        for line in env_file.read_text().splitlines():
            key, value = line.removeprefix("export ").split("=", 1)
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("PLIVO_REQUESTS_PER_SECOND", "500")
        r = cli("run", "--provider", "plivo", "--since", "-7d", "--dest", str(tmp_path / "a"))
        assert r.exit_code == 0 and "archived=4" in r.output, r.output
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.communicate(timeout=30)
    bad = cli("sim", "--start", "last tuesday")
    assert bad.exit_code == 2 and "bad date 'last tuesday'" in bad.output


# --- global options after the command, logs, run.summary -------------------------------------

TEXT_LINE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z (DEBUG|INFO|WARNING|ERROR) "


def test_global_options_after_the_command_and_the_json_run_summary(cli, tmp_path: Path, sim_env) -> None:
    report = tmp_path / "run.json"
    args = (*BACKFILL, "--dest", str(tmp_path / "archive"), "--report", str(report))
    r = cli(*args, "-v", "--log-format", "json")
    assert r.exit_code == 0, r.output
    events = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]
    assert any(e.get("recording_id") for e in events)  # -v after the command: per recording
    last = events[-1]
    assert last["event"] == "run.summary" and last["exit_code"] == 0
    assert last["counts"] == json.loads(report.read_text())["counts"]
    assert sum(e.get("event") == "run.summary" for e in events) == 1


def test_after_the_command_wins_and_text_logs_carry_the_date(cli, tmp_path: Path, sim_env) -> None:
    import re

    dest = ("--dest", str(tmp_path / "archive"))
    r = cli("--log-format", "json", *BACKFILL, *dest, "-v", "--log-format", "text")
    assert r.exit_code == 0, r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines and all(re.match(TEXT_LINE, line) for line in lines), lines[:3]
    quiet = cli("-v", *BACKFILL, *dest, "-q")  # -q holds wherever it is given
    assert quiet.exit_code == 0 and quiet.stderr == ""
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("[archive]\nconcurrency = 2\n")
    bad.write_text("[archive]\nno_such_key = 1\n")
    r = cli("--config", str(good), *BACKFILL, *dest, "--config", str(bad))
    assert r.exit_code == 2 and "no_such_key" in r.output
    r = cli("--config", str(bad), *BACKFILL, *dest, "--config", str(good))
    assert r.exit_code == 0, r.output


# --- --number ---------------------------------------------------------------------------------


def test_number_matches_e164_and_provider_forms_alike() -> None:
    from archiver.sidecars import Selection

    doc = {"recording": {"from_number": "14155551229", "to_number": "sip:agent@example.com"}}
    for given in ("+14155551229", "14155551229", "+1 415-555-1229"):
        assert Selection(number=given).matches(doc), given
    assert Selection(number="14155551229").matches({"recording": {"from_number": "+14155551229"}})
    assert Selection(number="14155551229").matches({"recording": {"to_number": 14155551229}})
    assert Selection(number="sip:agent@example.com").matches(doc)
    assert not Selection(number="agent@example.com").matches(doc)  # sip: URIs as written
    assert not Selection(number="+14155551228").matches(doc)


def test_export_and_verify_by_number_in_either_form_and_say_when_nothing_matched(
    cli, tmp_path: Path, sim_env
) -> None:
    dest = tmp_path / "archive"
    assert cli(*BACKFILL, "--dest", str(dest)).exit_code == 0
    numbers = [
        json.loads(p.read_text())["recording"]["from_number"]
        for p in dest.rglob("*.json")
        if ".archiver-staging" not in p.parts
    ]
    plain = next(n for n in numbers if n and n.isdigit())  # Plivo writes 1415..., no '+'
    wanted = sum(n == plain for n in numbers)
    r = cli("export", "--dest", str(dest), "--number", f"+{plain}", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    assert f"exported recordings={wanted} " in r.output
    v = cli("verify", "--dest", str(dest), "--number", f"+{plain}")
    assert v.exit_code == 0 and f"recordings={wanted} " in v.stdout
    none = cli("export", "--dest", str(dest), "--number", "+19999999999", "--out", str(tmp_path / "o2"))
    assert "no archived recording matches --number +19999999999" in none.stderr
    none = cli("verify", "--dest", str(dest), "--number", "+19999999999")
    assert "no archived recording matches --number +19999999999" in none.stderr
