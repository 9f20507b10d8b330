"""Issue 8, 2.3: provider ids are printed raw. A recording id holding a newline forged a log
line; one holding ESC sequences cleared the user's terminal. Every text log line and every
line the CLI prints now shows control characters as escapes; JSON logs stay one valid JSON
object per line that round-trips the id exactly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from scripted import Reply
from stand_in import PLIVO_ID, RANGE, plivo_backfill, plivo_page, plivo_record, wav

FORGED = "12:00:00 INFO archived everything"
HOSTILE_IDS = (
    f"r-1\n{FORGED}",
    "r-2\x1b[2J\x1b[31m",
    "r-3\r\x9b2J\x7f",  # carriage return, 8-bit CSI, DEL
    "r-4\u2028forged\u2029line\u202eevil",  # line/paragraph separators, bidi override
)
RAW = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Text log lines start with the UTC date and time (issue 9).
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def _lines(text: str) -> list[str]:
    # Split on "\n" only: a raw separator left inside a line must fail the RAW check below.
    return text.removesuffix("\n").split("\n") if text else []


def assert_clean(text: str, *, log_lines: bool = False) -> list[str]:
    """No raw control character anywhere, no forged line; returns the lines."""
    assert not RAW.search(text.replace("\n", "")), repr(text)
    lines = _lines(text)
    assert not any(line.startswith(FORGED) for line in lines), text
    if log_lines:
        bad = [line for line in lines if not LOG_LINE.match(line) and not line.startswith("error: ")]
        assert not bad, bad
    return lines


@pytest.fixture
def hostile_listing(scripted, plivo_at) -> None:
    plist = plivo_at(scripted)
    records = [plivo_record(scripted, rid) for rid in HOSTILE_IDS]
    scripted.route("GET", plist, plivo_page(records))
    scripted.route("GET", r"/media/.*", Reply(body=wav(), headers={"Content-Type": "audio/wav"}))


@pytest.mark.usefixtures("hostile_listing")
def test_text_logs_and_summary_escape_provider_ids(cli, tmp_path: Path, quick_config) -> None:
    r = cli(
        "--config", quick_config(), "-v", "backfill", "--provider", "plivo", *RANGE, "--dest", str(tmp_path)
    )
    assert r.exit_code == 1, r.output  # no such id can be a key: each is failed, at stage plan
    assert_clean(r.stderr, log_lines=True)
    assert _lines(r.stdout) == ["listed=4 archived=0 skipped=0 pending=0 failed=4 unavailable=0"]
    # The ids are still shown, escaped, so a user can tell which recording it was.
    assert "r-1\\n12:00:00 INFO archived everything" in r.stderr
    assert "r-2\\x1b[2J\\x1b[31m" in r.stderr
    assert "r-4\\u2028forged\\u2029line\\u202eevil" in r.stderr


@pytest.mark.usefixtures("hostile_listing")
def test_json_logs_stay_one_object_per_line_with_the_exact_id(cli, tmp_path: Path, quick_config) -> None:
    r = cli(
        "--config",
        quick_config(),
        "-v",
        "--log-format",
        "json",
        "backfill",
        "--provider",
        "plivo",
        *RANGE,
        "--dest",
        str(tmp_path),
    )
    assert r.exit_code == 1, r.output
    assert not RAW.search(r.stderr.replace("\n", ""))
    # str.splitlines splits on \u2028, \x85, \x1c...: a JSON reader using it sees one event per line too.
    events = [json.loads(line) for line in r.stderr.splitlines()]
    failed = {e["recording_id"] for e in events if e.get("status") == "failed"}
    assert failed == set(HOSTILE_IDS)


@pytest.mark.usefixtures("hostile_listing")
def test_dry_run_lines_escape_provider_ids(cli, tmp_path: Path, quick_config) -> None:
    r = cli(
        *plivo_backfill(quick_config(), tmp_path),
        "--dry-run",
    )
    lines = assert_clean(r.stdout)
    assert len(lines) == len(HOSTILE_IDS) + 2, lines  # one per recording, the plan, the summary
    assert all(line.startswith(("failed r-", "dry run:", "listed=")) for line in lines), lines


@pytest.mark.parametrize("command", ["backfill", "doctor"])
def test_error_lines_escape_provider_messages(
    command: str, cli, tmp_path: Path, scripted, plivo_at, quick_config
) -> None:
    """A provider's error message is quoted in the run's error line, its ABORTED summary and
    doctor's findings."""
    plist = plivo_at(scripted)
    scripted.route("GET", plist, Reply(status=401, json={"error": f"denied\x1b[2J\n{FORGED}\u2028"}))
    args = [*RANGE] if command == "backfill" else []
    r = cli("--config", quick_config(), command, "--provider", "plivo", *args, "--dest", str(tmp_path))
    assert r.exit_code == (3 if command == "backfill" else 1), r.output
    assert_clean(r.stdout)
    assert_clean(r.stderr, log_lines=True)
    assert "denied\\x1b[2J\\n12:00:00" in r.output


def test_verify_findings_escape_keys_from_sidecars(cli, tmp_path: Path) -> None:
    """A sidecar is data anyone with write access to the archive can plant."""
    folder = tmp_path / "plivo" / PLIVO_ID
    folder.mkdir(parents=True)
    doc = {
        "schema": "archiver.sidecar/1",
        "recording": {"provider": "plivo", "account": PLIVO_ID, "recording_id": f"r-9\n{FORGED}"},
        "files": [
            {"role": "original", "key": f"plivo/{PLIVO_ID}/r-9\x1b[2J.wav", "bytes": 1, "sha256": "0" * 64}
        ],
    }
    (folder / "r-9.json").write_text(json.dumps(doc))
    # The same with a safe id, so the finding quotes the key with the ESC in it.
    doc["recording"]["recording_id"] = "r-8"
    (folder / "r-8.json").write_text(json.dumps(doc))
    r = cli("verify", "--dest", str(tmp_path))
    assert r.exit_code == 1, r.output
    assert_clean(r.stderr)
    assert_clean(r.stdout)
    assert "\\x1b[2J" in r.stderr and "r-9\\n12:00:00" in r.stderr
