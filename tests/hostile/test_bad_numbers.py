"""Bad numbers and names exit 2 with one clear line, never a traceback (issue 8, 3.14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted import Reply, Scripted
from stand_in import RANGE, plivo_page, plivo_record


def one_error_line(output: str) -> str:
    assert "Traceback" not in output
    errors = [ln for ln in output.splitlines() if ln.startswith(("error:", "Error:"))]
    assert len(errors) == 1, output
    return errors[0]


BAD_ARGS = {
    "--since -99999999999d": (("backfill", "--since", "-99999999999d"), "bad duration"),
    "--since 0001-01-01": (("backfill", "--since", "0001-01-01"), "between 1970-01-01 and 9000-01-01"),
    "--since 9999-12-31": (("run", "--since", "9999-12-31"), "between 1970-01-01 and 9000-01-01"),
    "run --since 0001-01-01": (("run", "--since", "0001-01-01"), "between 1970-01-01"),
    "run --overlap huge": (("run", "--since", "-1d", "--overlap", "999999999d"), "longer than 100 years"),
    "--window 1s over years": (
        ("backfill", "--since", "2000-01-01", "--until", "2026-01-01", "--window", "1s"),
        "use a larger --window",
    ),
    "--window 99999999999d": (
        ("backfill", "--since", "2024-01-01", "--window", "99999999999d"),
        "bad duration",
    ),
    "--concurrency 0": (("run", "--since", "-1d", "--concurrency", "0"), "--concurrency"),
    "s3://Bad_Bucket!": (("run", "--since", "-1d", "--dest", "s3://Bad_Bucket!"), "is not a bucket name"),
    "s3://ab": (("run", "--since", "-1d", "--dest", "s3://ab"), "is not a bucket name"),
}


@pytest.mark.parametrize("name", list(BAD_ARGS))
def test_bad_arguments_exit_2(
    name: str, cli, tmp_path: Path, freeze, scripted: Scripted, plivo_at, quick_config
) -> None:
    freeze()
    plivo_at(scripted)
    args, says = BAD_ARGS[name]
    command, *rest = args
    if "--dest" not in rest:
        rest += ["--dest", str(tmp_path / "a")]
    r = cli("--config", quick_config(), command, "--provider", "plivo", *rest)
    assert r.exit_code == 2, r.output
    assert says in one_error_line(r.output)
    assert scripted.requests == []  # nothing was done


BAD_ENV = {
    "PLIVO_AUTH_ID=../../etc": ("plivo", {"PLIVO_AUTH_ID": "../../etc"}, "PLIVO_AUTH_ID '../../etc' is not"),
    "PLIVO_AUTH_ID with a dot": ("plivo", {"PLIVO_AUTH_ID": "MA.x"}, "is not an account id"),
    "CATAPULT_USER_ID=../x": ("catapult", {"CATAPULT_USER_ID": "../x"}, "CATAPULT_USER_ID '../x' is not"),
    "rate nan": ("plivo", {"PLIVO_REQUESTS_PER_SECOND": "nan"}, "requests_per_second must be a number"),
    "rate inf": ("plivo", {"PLIVO_REQUESTS_PER_SECOND": "inf"}, "requests_per_second must be a number"),
    "rate -1": ("plivo", {"PLIVO_REQUESTS_PER_SECOND": "-1"}, "requests_per_second must be a number"),
    "rate 0": ("catapult", {"CATAPULT_REQUESTS_PER_SECOND": "0"}, "requests_per_second"),
    "ARCHIVER_CONCURRENCY=0": ("plivo", {"ARCHIVER_CONCURRENCY": "0"}, "concurrency must be 1..256"),
}


@pytest.mark.parametrize("name", list(BAD_ENV))
def test_bad_settings_exit_2(
    name: str, cli, tmp_path: Path, monkeypatch, scripted: Scripted, plivo_at, catapult_at, quick_config
) -> None:
    provider, env, says = BAD_ENV[name]
    plivo_at(scripted)
    catapult_at(scripted)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    r = cli(
        "--config",
        quick_config(),
        "backfill",
        "--provider",
        provider,
        *RANGE,
        "--dest",
        str(tmp_path / "a"),
    )
    assert r.exit_code == 2, r.output
    assert says in one_error_line(r.output)
    assert scripted.requests == []


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file:///etc/passwd", "has the URL scheme 'file'"),
        ("ftp://media.example/r-1.wav", "has the URL scheme 'ftp'"),
        ("media/r-1.wav", "is relative"),
    ],
)
def test_media_urls_we_do_not_fetch_fail_at_once(
    url: str, says: str, cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config
) -> None:
    scripted.route("GET", plivo_at(scripted), plivo_page([plivo_record(scripted, "r-1", recording_url=url)]))
    report = tmp_path / "report.json"
    args = ("backfill", "--provider", "plivo", *RANGE, "--dest", str(tmp_path / "a"), "--report", str(report))
    r = cli("--config", quick_config(), *args)
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    (failure,) = json.loads(report.read_text())["failures"]
    assert failure["stage"] == "fetch" and says in failure["error"] and "r-1" in failure["error"]
    assert "gave up after" not in failure["error"]  # not retried


def test_a_redirect_to_a_file_url_is_not_followed(
    cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config
) -> None:
    scripted.route("GET", plivo_at(scripted), plivo_page([plivo_record(scripted, "r-1")]))
    scripted.route("GET", r"/media/.*", Reply(status=302, headers={"Location": "file:///etc/passwd"}))
    report = tmp_path / "report.json"
    args = ("backfill", "--provider", "plivo", *RANGE, "--dest", str(tmp_path / "a"), "--report", str(report))
    r = cli("--config", quick_config(), *args)
    assert r.exit_code == 1, r.output
    (failure,) = json.loads(report.read_text())["failures"]
    assert "has the URL scheme 'file'" in failure["error"]
    assert len(scripted.hits(r"/media/.*")) == 1
