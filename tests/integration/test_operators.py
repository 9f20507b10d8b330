"""What operators script against: `config path/show`, `--version`, `--json` documents, the
repair line of `verify`, the refused `export --out x.tar`, the progress bar at 80 columns, and
the shipped systemd units, crontab line and Dockerfile."""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

import pytest

from archiver import __version__
from archiver.sim import Simulator

ROOT = Path(__file__).parents[2]
SECRET = "tok-operators-very-secret"


# --- config path / show ----------------------------------------------------------------------


def test_config_path_names_the_users_file_or_exits_1(cli, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("archiver.config.SYSTEM_CONFIG", str(tmp_path / "etc" / "config.toml"))
    r = cli("config", "path")
    assert r.exit_code == 1 and r.stdout == "" and "no config file" in r.stderr
    user = tmp_path / "xdg" / "archiver" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[archive]\nconcurrency = 3\n")
    r = cli("config", "path")
    assert r.exit_code == 0 and r.stdout == f"{user}\n"
    # ... and a command reads it without being told
    r = cli("config", "show", "--json")
    assert json.loads(r.stdout)["settings"]["archive.concurrency"] == {
        "value": 3,
        "source": "file",
        "where": str(user),
    }


def test_config_show_masks_secrets_and_gives_every_origin(cli, monkeypatch, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[plivo]\nauth_token = "{SECRET}"\n[archive]\nconcurrency = 3\n')
    monkeypatch.setenv("PLIVO_AUTH_ID", "MAOPERATOR")
    monkeypatch.setenv("CATAPULT_API_SECRET", SECRET + "-2")
    monkeypatch.setenv("ARCHIVER_HTTP_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("ARCHIVER_ARCHIVE_CONCURENCY", "9")  # a typo: named, not silently lost
    r = cli("--config", str(cfg), "config", "show", "--dest", "/flagged")
    assert r.exit_code == 0, r.output
    assert SECRET not in r.output
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if not line.startswith("#")}
    assert lines["plivo.auth_token"].split()[1:] == ["***", "file", str(cfg)]
    assert lines["catapult.api_secret"].split()[1:] == ["***", "env", "CATAPULT_API_SECRET"]
    assert lines["archive.concurrency"].split()[1:] == ["3", "file", str(cfg)]
    assert lines["http.max_attempts"].split()[1:] == ["2", "env", "ARCHIVER_HTTP_MAX_ATTEMPTS"]
    assert lines["archive.dest"].split()[1:] == ['"/flagged"', "flag"]
    assert lines["http.timeout_seconds"].split()[1:] == ["60.0", "default"]
    # the catalog's default is this user's path: the one a command would open
    monkeypatch.delenv("ARCHIVER_CATALOG", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    shown = {ln.split()[0]: ln for ln in cli("--config", str(cfg), "config", "show").stdout.splitlines()}
    assert shown["archive.catalog"].split()[1:3] == [f'"{tmp_path}/state/archiver/catalog.db"', "default"]
    assert "ARCHIVER_ARCHIVE_CONCURENCY is set but is no setting" in r.stderr
    doc = json.loads(cli("--config", str(cfg), "config", "show", "--json").stdout)
    assert doc["schema_version"] == 1 and SECRET not in json.dumps(doc)
    assert doc["settings"]["plivo.auth_token"]["value"] == "***"


def test_config_show_masks_a_password_inside_a_url(cli, monkeypatch) -> None:
    monkeypatch.setenv("PLIVO_BASE_URL", "http://MAX:SuperSecretPw@127.0.0.1:9/")
    monkeypatch.setenv("ARCHIVER_DASK_SCHEDULER", "tls://u:DaskPw99@h:8786")
    text = cli("config", "show")
    doc = cli("config", "show", "--json")
    assert text.exit_code == 0 and doc.exit_code == 0
    for out in (text.output, doc.stdout):
        assert "SuperSecretPw" not in out and "DaskPw99" not in out
    assert "http://MAX:***@127.0.0.1:9/" in text.output and "tls://u:***@h:8786" in text.output


def test_config_show_refuses_an_invalid_value_as_a_command_would(cli, monkeypatch) -> None:
    monkeypatch.setenv("ARCHIVER_ARCHIVE_CONCURRENCY", "lots")
    r = cli("config", "show", "--json")
    assert r.exit_code == 2 and "ARCHIVER_ARCHIVE_CONCURRENCY" in r.stderr
    assert json.loads(r.stdout) == {
        "schema_version": 1,
        "command": "config show",
        "error": "archive.concurrency from $ARCHIVER_ARCHIVE_CONCURRENCY: 'lots' is not a valid int",
        "exit_code": 2,
    }


# --- --version ---------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_names_archiver_python_libraries_and_ffmpeg(cli, flag: str) -> None:
    import platform

    r = cli(flag)
    assert r.exit_code == 0
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert lines["archiver"] == f"{__version__} (call-recording-archiver)"
    assert lines["Python"].startswith(platform.python_version() + " ")
    for lib in ("httpx", "boto3", "mutagen", "distributed"):  # distributed: the dask extra
        assert lines[lib] == metadata.version(lib)
    version, path = re.fullmatch(r"(\S+) \((.+)\)", lines["ffmpeg"]).groups()  # type: ignore[union-attr]
    assert Path(path).is_file() and not version.startswith("not")
    assert metadata.version("call-recording-archiver") == __version__  # one version, two places


def test_version_names_a_configured_ffmpeg_that_does_not_run(cli, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARCHIVER_TRANSCODE_FFMPEG", str(tmp_path / "no-ffmpeg"))
    r = cli("--version")
    assert r.exit_code == 0
    assert f"ffmpeg not runnable (FileNotFoundError) ({tmp_path / 'no-ffmpeg'})" in r.stdout
    monkeypatch.setenv("ARCHIVER_CONFIG", str(tmp_path / "missing.toml"))  # still a version
    assert cli("--version").exit_code == 0


# --- --json documents -----------------------------------------------------------------------------


def test_doctor_verify_export_print_one_json_document(
    backfill, sim: Simulator, sim_env: dict, cli, tmp_path: Path
) -> None:
    dest = str(tmp_path / "a")
    backfill("plivo", dest, "--catalog", str(tmp_path / "cat.db"))
    r = cli("doctor", "--provider", "plivo", "--dest", dest, "--catalog", str(tmp_path / "cat.db"), "--json")
    doc = json.loads(r.stdout)  # the whole of stdout is one document
    assert doc["schema_version"] == 1 and doc["command"] == "doctor"
    assert doc["counts"]["failed"] == 0 and r.exit_code == 0
    assert {c["check"] for c in doc["checks"]} >= {"provider plivo", "ffmpeg", "catalog"}
    assert "doctor: " in r.stderr  # the human text, on stderr

    r = cli("verify", "--dest", dest, "--json")
    doc = json.loads(r.stdout)
    assert (doc["command"], doc["recordings"], doc["counts"], doc["repair_commands"]) == (
        "verify",
        30,
        {"altered": 0, "missing": 0, "orphaned": 0, "unlisted": 0, "unreadable": 0, "unsafe": 0},  # zeros too
        [],
    )
    assert "recordings=30" in r.stderr and r.exit_code == 0

    r = cli("export", "--dest", dest, "--out", str(tmp_path / "audit.zip"), "--json")
    doc = json.loads(r.stdout)
    assert doc["command"] == "export" and doc["counts"]["recordings"] == 30 and r.exit_code == 0
    assert doc["out"] == str(tmp_path / "audit.zip") and (tmp_path / "audit.zip").is_file()
    # --report - is a second document on stdout: refused before any work
    r = cli("verify", "--dest", dest, "--json", "--report", "-")
    assert r.exit_code == 2 and "--json and --report -" in r.stderr


def test_forget_reindex_and_custody_verify_print_one_json_document(
    backfill, sim: Simulator, sim_env: dict, cli, tmp_path: Path
) -> None:
    dest, catalog = str(tmp_path / "a"), str(tmp_path / "cat.db")
    backfill("plivo", dest, "--catalog", catalog)
    archived_id = sim.plivo[0].id
    r = cli(
        "forget",
        "--provider",
        "plivo",
        "--dest",
        dest,
        "--catalog",
        catalog,
        "rec-typo",
        archived_id,
        "--json",
    )
    doc = json.loads(r.stdout)
    assert (doc["command"], doc["forgot"], doc["kept"], doc["unknown"]) == (
        "forget",
        [],
        [archived_id],
        ["rec-typo"],
    )
    assert doc["exit_code"] == r.exit_code == 1 and doc["custody_logged"] is True
    assert "unknown rec-typo" in r.stderr and "forgot=0 kept=1 unknown=1" in r.stderr

    r = cli("reindex", "--dest", dest, "--catalog", catalog, "--json")
    doc = json.loads(r.stdout)
    assert doc["command"] == "reindex" and doc["counts"] == {"reindexed": 30, "unreadable": 0, "unsafe": 0}
    assert doc["damaged_catalog_moved_to"] is None and doc["problems"] == [] and r.exit_code == 0

    r = cli("custody", "verify", "--dest", dest, "--catalog", catalog, "--json")
    doc = json.loads(r.stdout)
    assert doc["command"] == "custody verify" and doc["intact"] is True and doc["problems"] == []
    assert doc["events"] == 1 and len(doc["head"]["sha256"]) == 64 and r.exit_code == 0  # the backfill
    (event,) = (tmp_path / "a" / "_custody").iterdir()
    event.write_text(event.read_text().replace('"backfill"', '"nothing"'))  # the event rewritten
    r = cli("custody", "verify", "--dest", dest, "--catalog", catalog, "--json")
    doc = json.loads(r.stdout)
    assert doc["intact"] is False and doc["problems"] and doc["exit_code"] == r.exit_code == 1


@pytest.mark.parametrize(
    ("argv", "command", "says"),
    [
        (["verify", "--json", "--since", "notadate"], "verify", "bad date 'notadate'"),  # our parse
        (["verify", "--json", "--sample", "x"], "verify", "Invalid value for '--sample'"),  # click's
        (["export", "--json", "--out", "x.zip", "--bogus"], "export", "No such option '--bogus'"),
        (["export", "--json"], "export", "Missing option '--out'"),
        (["doctor", "--executor", "bogus", "--json"], "doctor", "'bogus' is not one of"),  # after it
        (["--config", "/nonexistent/a.toml", "doctor", "--json"], "doctor", "does not exist"),
        (["config", "show", "--json", "--dest"], "config show", "requires an argument"),  # a sub-group
        (["verify", "--json", "--report", "-"], "verify", "--json and --report -"),
        (["custody", "verify", "--json", "--file", "/nonexistent"], "custody verify", "does not exist"),
        (["forget", "--json", "--provider", "plivo"], "forget", "Missing argument"),
    ],
)
def test_a_usage_error_under_json_is_one_json_document(cli, argv: list[str], command: str, says: str) -> None:
    r = cli(*argv)
    doc = json.loads(r.stdout)  # the whole of stdout, and nothing but the error
    assert doc["schema_version"] == 1 and doc["command"] == command
    assert doc["exit_code"] == r.exit_code == 2 and says in doc["error"]
    assert says in r.stderr  # the human text (click's usage lines or ours) stays on stderr


def test_report_to_stdout_is_one_versioned_document_even_when_the_run_cannot_start(
    backfill, sim: Simulator, sim_env: dict, cli, tmp_path: Path
) -> None:
    r = backfill("plivo", str(tmp_path / "a"), "--report", "-")
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == 1 and doc["counts"]["archived"] == 30 and r.exit_code == 0
    r = cli("transcode", "--dest", str(tmp_path / "a"), "--profile", "flac", "--report", "-")
    doc = json.loads(r.stdout)
    assert doc["command"] == "transcode" and doc["counts"]["encoded"] == 30
    assert "archived" not in doc["counts"]
    assert "encoded=30" in r.stderr  # the summary says what the report says
    # The destination cannot be made: no run, but still the one document, the error's.
    r = backfill("plivo", "/proc/no-archive-here", "--report", "-")
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == r.exit_code == 3 and "/proc/no-archive-here" in doc["error"], r.output
    assert doc["command"] == "backfill" and doc["schema_version"] == 1


def test_json_after_a_double_dash_is_no_request_for_json(cli) -> None:
    r = cli("verify", "--sample", "x", "--", "--json")
    assert r.exit_code == 2 and r.stdout == "" and "Invalid value for '--sample'" in r.stderr


def test_verify_ends_with_the_command_that_repairs_it(
    backfill, sim: Simulator, sim_env: dict, cli, tmp_path: Path
) -> None:
    dest = tmp_path / "a"
    backfill("plivo", str(dest), "--catalog", str(tmp_path / "cat.db"))
    media = sorted(p for p in dest.rglob("*") if p.suffix in (".wav", ".mp3"))
    media[0].write_bytes(media[0].read_bytes() + b"x")  # altered
    media[1].unlink()  # missing
    (dest / "stray.bin").write_bytes(b"?")  # orphaned
    r = cli("verify", "--dest", str(dest))
    assert r.exit_code == 1
    repairs = [line.removeprefix("repair: ") for line in r.stdout.splitlines() if line.startswith("repair: ")]
    assert r.stdout.splitlines()[-len(repairs) :] == [f"repair: {line}" for line in repairs]  # it ends so
    repair_line = next(line for line in repairs if line.startswith("archiver verify"))
    assert "stray.bin" in next(line for line in repairs if "no sidecar lists" in line)
    argv = shlex.split(repair_line.split("   #")[0])
    assert argv == ["archiver", "verify", "--dest", str(dest), "--repair"]
    assert "the 2 original(s)" in repair_line  # the two damaged recordings
    r = cli(*argv[1:], "--catalog", str(tmp_path / "cat.db"))
    assert r.exit_code == 1 and "repaired=2 unrepairable=0 locked=0" in r.output, r.output  # + the orphan
    (dest / "stray.bin").unlink()
    assert cli("verify", "--dest", str(dest)).exit_code == 0


def test_the_repair_line_runs_with_the_config_and_catalog_verify_was_given(
    backfill, sim: Simulator, sim_env: dict, cli, tmp_path: Path
) -> None:
    dest, catalog, config = tmp_path / "a", str(tmp_path / "elsewhere.db"), tmp_path / "c.toml"
    config.write_text("[http]\nmax_attempts = 3\n")
    backfill("plivo", str(dest), "--catalog", catalog)
    media = sorted(p for p in dest.rglob("*") if p.suffix in (".wav", ".mp3"))
    media[0].unlink()
    r = cli("--config", str(config), "verify", "--dest", str(dest), "--catalog", catalog)
    line = next(x for x in r.stdout.splitlines() if x.startswith("repair: archiver verify"))
    argv = shlex.split(line.removeprefix("repair: ").split("   #")[0])
    assert argv == [
        "archiver",
        "verify",
        "--dest",
        str(dest),
        "--repair",
        "--config",
        str(config),
        "--catalog",
        catalog,
    ]
    r = cli(*argv[1:])
    assert r.exit_code == 0 and "repaired=1" in r.output, r.output


def test_export_to_a_tar_name_is_refused_and_creates_nothing(cli, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for out in ("x.tar", "x.tar.gz", "x.tgz"):
        r = cli("export", "--dest", str(tmp_path / "a"), "--out", str(tmp_path / out))
        assert r.exit_code == 2 and "not as ." in r.stderr and "x.zip" in r.stderr, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_export_to_an_upper_case_zip_name_writes_a_zip(
    backfill, sim: Simulator, sim_env: dict, cli, tmp_path: Path
) -> None:
    import zipfile

    dest = tmp_path / "a"
    backfill("plivo", str(dest), "--catalog", str(tmp_path / "cat.db"))
    r = cli("export", "--dest", str(dest), "--out", str(tmp_path / "AUDIT.ZIP"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "AUDIT.ZIP").is_file() and zipfile.is_zipfile(tmp_path / "AUDIT.ZIP")


# --- the progress bar ------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "total"), [(80, 40), (80, None), (200, 40)])
def test_progress_bar_fits_80_columns_and_has_an_eta_when_the_total_is_known(
    width: int, total: int | None
) -> None:
    from rich.console import Console

    from archiver.cli.progress import RunProgress
    from archiver.models import Outcome
    from archiver.runner import RunResult

    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    result = RunResult("fetch", "plivo", "MA1", "/dest")
    with RunProgress(result, enabled=True, total=total, console=console) as bar:
        for i in range(10):
            result.listed += 1
            result.add(Outcome(f"r{i}", "failed" if i < 3 else "archived", bytes_downloaded=10**6))
            bar.update(result)
        assert bar._bar is not None
        bar._bar.refresh()
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", s) for s in re.split(r"[\r\n]", out.getvalue())]
    last = [line for line in lines if line.strip()][-1]
    assert len(last) <= width and "…" not in last, last  # nothing cut off
    assert "3 failed" in last or "failed 3" in last
    assert ("ETA" in last) == (total is not None)
    assert ("10/40" in last) == (total is not None)


# --- scheduling: systemd, cron, Docker -------------------------------------------------------


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = ROOT / "contrib" / "systemd"
    service = (units / "archiver-nightly.service").read_text()
    for needed in (
        "StateDirectory=archiver",
        "EnvironmentFile=/etc/archiver/",
        "Nice=",
        "IOSchedulingClass=",
    ):
        assert needed in service
    # verify wants the binary to exist: point ExecStart at this installation's archiver.
    exe = Path(shutil.which("archiver") or ROOT / ".venv" / "bin" / "archiver")
    assert exe.is_file()
    assert "\nUser=archiver\n" in service and not re.search(r"^DynamicUser=", service, flags=re.M)
    assert "\nExecStart=/opt/archiver/bin/archiver run " in service  # the README's install
    (tmp_path / "archiver-nightly.service").write_text(
        service.replace("/opt/archiver/bin/archiver", str(exe))
    )
    shutil.copy(units / "archiver-nightly.timer", tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "archiver-nightly.service", "archiver-nightly.timer"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # A value systemd cannot parse is only a warning on stderr: none is allowed.
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == "", proc.stderr + proc.stdout


def crontab_line() -> str:
    text = (ROOT / "contrib" / "cron" / "archiver.crontab").read_text()
    (line,) = [line for line in text.splitlines() if line and not line.startswith("#")]
    return line


def test_the_crontab_line_uses_absolute_paths_and_is_the_readmes() -> None:
    line = crontab_line()
    assert line in (ROOT / "README.md").read_text()
    fields = line.split(None, 5)
    assert len(fields) == 6 and "%" not in line  # cron turns % into newlines
    paths = re.findall(r"(?:^|[\s=>])(/\S+|\.\S*/\S+|~\S*)", fields[5])
    assert paths and all(p.startswith("/") for p in paths), paths
    assert "/opt/archiver/bin/archiver " in fields[5] and "flock" not in fields[5]


def cron(command: str, env: dict[str, str], home: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["/bin/sh", "-c", command], env=env, cwd=home, capture_output=True, timeout=120)


def test_the_crontab_line_runs_in_crons_environment_and_logs_even_its_own_failure(tmp_path: Path) -> None:
    """The shipped line, run as cron runs it (``/bin/sh -c``, PATH=/usr/bin:/bin, $HOME as
    the working folder), with only its paths moved into tmp_path: it archives, everything it
    says lands in the log, and a credentials file it cannot read is in the log too."""
    exe = Path(shutil.which("archiver") or ROOT / ".venv" / "bin" / "archiver")
    command = crontab_line().split(None, 5)[5]
    moved = {
        "/etc/archiver/credentials.env": tmp_path / "credentials.env",
        "/var/lib/archiver/catalog.db": tmp_path / "catalog.db",
        "/opt/archiver/bin/archiver": exe,
        "s3://acme-calls/recordings": tmp_path / "archive",
        "/var/log/archiver/plivo.log": tmp_path / "plivo.log",
        "/var/lib/prometheus/node-exporter/archiver-plivo.prom": tmp_path / "plivo.prom",
    }
    for shipped, here in moved.items():
        assert command.count(shipped) == 1, shipped
        command = command.replace(shipped, str(here))
    cron_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh", "LOGNAME": "archiver"}
    log = tmp_path / "plivo.log"
    # The line's own --since -7d, against recordings of the last six days.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=6)
    with Simulator(recordings=8, seed=3, start=start, days=5) as sim:
        creds = sim.env() | {"PLIVO_REQUESTS_PER_SECOND": "500"}
        (tmp_path / "credentials.env").write_text("".join(f"{k}={v}\n" for k, v in creds.items()))
        (tmp_path / "credentials.env").chmod(0o600)
        proc = subprocess.run(
            ["/bin/sh", "-c", command], env=cron_env, cwd=tmp_path, capture_output=True, timeout=120
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b""), log.read_text()
        assert len(list((tmp_path / "archive").rglob("*.json"))) == 8
        assert "archiver_last_success_timestamp_seconds" in (tmp_path / "plivo.prom").read_text()
        assert "archived=8" in log.read_text()
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO listing ", log.read_text())  # dated
        assert creds["PLIVO_AUTH_TOKEN"] not in log.read_text()

        (tmp_path / "credentials.env").unlink()  # moved, or left root's 0600
        before = log.read_text()
        proc = subprocess.run(
            ["/bin/sh", "-c", command], env=cron_env, cwd=tmp_path, capture_output=True, timeout=120
        )
    assert proc.returncode != 0 and (proc.stdout, proc.stderr) == (b"", b"")  # nothing for cron to mail
    assert "credentials.env" in log.read_text().removeprefix(before)  # ... it is in the log


def test_the_credentials_example_reads_alike_in_sh_docker_and_systemd(tmp_path: Path) -> None:
    """contrib/credentials.env.example, the file all three read: sh (`set -a; .`) gives the
    same variables as docker's --env-file rules (KEY=value taken literally, # lines and blank
    lines skipped), and every line keeps to what systemd parses the same way."""
    example = ROOT / "contrib" / "credentials.env.example"
    lines = [ln for ln in example.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    docker = dict(ln.split("=", 1) for ln in lines)
    assert {"PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "AWS_ACCESS_KEY_ID"} <= docker.keys()
    plain = re.compile(r"^[A-Z][A-Z0-9_]*=[A-Za-z0-9/+=._:@-]*$")  # no quotes, spaces, $ \ `
    assert all(plain.match(ln) for ln in lines), [ln for ln in lines if not plain.match(ln)]
    proc = subprocess.run(
        ["/bin/sh", "-c", f'set -a && . "{example}" && env -0'],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
    )
    sh = dict(item.split("=", 1) for item in proc.stdout.decode().split("\0") if item)
    assert {k: sh[k] for k in docker} == docker
    from archiver.config import env_file_slips

    assert env_file_slips(docker) == []


def test_dockerfile_runs_unprivileged_with_the_catalog_on_a_volume() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE=(\S+)", text, flags=re.M).group(1)  # type: ignore[union-attr]
    assert base.startswith("python:3") and base.endswith("-slim")
    stages = text.split("\nFROM ")
    assert len(stages) == 3 and all(s.split()[0] == "${BASE}" for s in stages[1:])
    final = stages[-1]
    user = re.findall(r"^USER (\S+)", final, flags=re.M)
    # numeric (Kubernetes' runAsNonRoot cannot check a name) and not root
    assert user and re.fullmatch(r"[1-9][0-9]*:[0-9]+", user[-1]), user
    uid = user[-1].split(":")[0]
    (volume,) = json.loads(re.search(r"^VOLUME (\[.*\])", final, flags=re.M).group(1))  # type: ignore[union-attr]
    catalog = re.search(r"ARCHIVER_CATALOG=(\S+)", final).group(1)  # type: ignore[union-attr]
    assert catalog.startswith(volume.rstrip("/") + "/")
    assert f"--uid {uid}" in final and f"--home-dir {volume}" in final
    # the user owns it
    assert re.search(rf"install -d -o {uid} -g \d+ -m 0?7[0-7]0 {re.escape(volume)}", final)
    # PID 1 that forwards SIGTERM: `docker stop` of a command without a handler is not a SIGKILL
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])", final, flags=re.M).group(1)  # type: ignore[union-attr]
    assert json.loads(entrypoint)[:3] == ["tini", "--", "archiver"]
