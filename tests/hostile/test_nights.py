"""Nightly runs that stay quiet on good nights (issue 9, item 3): ``unavailable`` recordings
(a get-one 404, a Catapult ``error``) are final and news only once; ``forget``; ``run --since``
only where there is no watermark yet. Every night is a real CLI run against a scripted
provider over loopback, with the product clock frozen at that night.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scripted import Reply, Scripted
from stand_in import catapult_record, plivo_listing, plivo_record, wav

NIGHT = datetime(2026, 6, 15, 2, 15, tzinfo=UTC)  # the crontab's 02:15
AUDIO = Reply(body=wav(), headers={"Content-Type": "audio/wav"})
GONE = Reply(status=404, json={"api_id": "x", "error": "not found"})


def summary(output: str) -> str:
    return [line for line in output.splitlines() if line.startswith("listed=")][-1]


def plivo_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def earliest_listed(srv: Scripted, path: str, after: int = 0) -> datetime:
    """The earliest ``add_time__gte`` of the Plivo list requests after the first ``after``."""
    return min(plivo_time(r.query["add_time__gte"][0]) for r in srv.hits(path)[after:])


def test_typo_and_error_recording_are_news_once_then_quiet(
    cli, tmp_path: Path, scripted: Scripted, catapult_at, quick_config, freeze
) -> None:
    # The "Done when": a nightly run after a typo'd id and an 'error' recording exits
    # 0 on the second night.
    root = catapult_at(scripted)
    start, end = "2026-06-15T01:00:00Z", "2026-06-15T01:00:02Z"
    records = [
        catapult_record(scripted, "rec-good", start=start, end=end),
        catapult_record(scripted, "rec-broken", start=start, end=end, state="error"),
    ]
    scripted.route("GET", f"{root}/recordings", Reply(json=records))
    scripted.route("GET", f"{root}/calls/.*", Reply(json={"from": "+14155550100", "to": "+14155550199"}))
    scripted.route("GET", f"{root}/media/.*", AUDIO)
    # (rec-typo is routed nowhere: its get-one is the scripted server's 404)
    config, dest = quick_config(), str(tmp_path / "a")

    freeze(NIGHT)
    report = tmp_path / "fetch.json"
    r = cli(
        "--config",
        config,
        "fetch",
        "--provider",
        "catapult",
        "rec-typo",
        "--dest",
        dest,
        "--report",
        str(report),
    )
    assert r.exit_code == 1, r.output  # news: someone typed a wrong id
    assert summary(r.output) == "listed=1 archived=0 skipped=0 pending=0 failed=0 unavailable=1"
    found = json.loads(report.read_text())
    assert found["failures"] == []
    [typo] = found["unavailable"]
    assert typo["recording_id"] == "rec-typo" and typo["stage"] == "get" and typo["new"] is True
    assert "HTTP 404" in typo["error"]

    r = cli("--config", config, "run", "--provider", "catapult", "--since", "-1d", "--dest", dest)
    assert r.exit_code == 1, r.output  # news: the provider lost rec-broken
    assert summary(r.output) == "listed=2 archived=1 skipped=0 pending=0 failed=0 unavailable=1"

    # A dry run plans from the same memory: both are known, neither is news.
    r = cli("--config", config, "run", "--provider", "catapult", "--dest", dest, "--dry-run")
    assert r.exit_code == 0 and "unavailable rec-broken" in r.output, r.output
    r = cli("--config", config, "fetch", "--provider", "catapult", "rec-typo", "--dest", dest, "--dry-run")
    assert r.exit_code == 0 and "unavailable rec-typo" in r.output, r.output

    asked = len(scripted.hits(f"{root}/recordings/rec-typo"))
    freeze(NIGHT + timedelta(days=1))  # the next night: the same crontab line
    report, metrics = tmp_path / "night2.json", tmp_path / "night2.prom"
    r = cli(
        "--config", config, "run", "--provider", "catapult", "--since", "-1d", "--dest", dest,
        "--report", str(report), "--metrics-file", str(metrics),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    # rec-broken is in the overlap and listed again: known, not news; rec-typo is not retried.
    assert summary(r.output) == "listed=2 archived=0 skipped=1 pending=0 failed=0 unavailable=1"
    night2 = json.loads(report.read_text())
    assert night2["counts"]["unavailable"] == 1 and night2["failures"] == []
    assert [(u["recording_id"], u["stage"], u["new"]) for u in night2["unavailable"]] == [
        ("rec-broken", "catalog", False)
    ]
    assert "'error'" in night2["unavailable"][0]["error"]
    prom = metrics.read_text()
    assert 'status="unavailable"} 1' in prom and "archiver_last_run_exit_code{" in prom
    assert [line for line in prom.splitlines() if line.startswith("archiver_last_run_exit_code")][0].endswith(
        " 0"
    )
    assert len(scripted.hits(f"{root}/recordings/rec-typo")) == asked  # not retried
    assert not scripted.hits(f"{root}/media/c-rec-broken-1.wav")


def test_a_remembered_id_the_provider_no_longer_has_is_unavailable_once(
    cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config, freeze
) -> None:
    # Media 404 after a good listing stays 'failed' and is retried; once the provider's
    # get-one says 404 too, the recording is unavailable: news that night, quiet after.
    path = plivo_at(scripted)
    start_ms = int((NIGHT - timedelta(hours=1)).timestamp() * 1000)
    rec = plivo_record(scripted, "rec-a", start_ms=start_ms)
    scripted.route("GET", path, plivo_listing([rec]))
    scripted.route("GET", f"{path}rec-a/", Reply(json={"api_id": "x", **rec}))
    scripted.route("GET", "/media/rec-a.wav", Reply(status=404, body=b"NoSuchKey"))
    config, dest = quick_config(), str(tmp_path / "a")

    def night(n: int, *more: str) -> Any:
        freeze(NIGHT + timedelta(days=n))
        return cli("--config", config, "run", "--provider", "plivo", "--dest", dest, *more)

    r = night(0, "--since", "-1d")
    assert r.exit_code == 1 and summary(r.output).endswith("failed=1 unavailable=0"), r.output
    r = night(1)
    assert r.exit_code == 1 and summary(r.output).endswith("failed=1 unavailable=0"), r.output
    assert len(scripted.hits("/media/rec-a.wav")) == 2  # retried: a media 404 is not final
    scripted.route("GET", f"{path}rec-a/", GONE)  # now the provider has forgotten it
    r = night(2)
    assert r.exit_code == 1 and summary(r.output) == (
        "listed=1 archived=0 skipped=0 pending=0 failed=0 unavailable=1"
    ), r.output
    gets = len(scripted.hits(f"{path}rec-a/"))
    r = night(3)
    assert r.exit_code == 0, r.output
    assert summary(r.output) == "listed=0 archived=0 skipped=0 pending=0 failed=0 unavailable=0"
    assert len(scripted.hits(f"{path}rec-a/")) == gets  # not asked again


def test_forget_drops_a_given_up_id_and_keeps_archived_ones(
    cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config, freeze
) -> None:
    path = plivo_at(scripted)
    start_ms = int((NIGHT - timedelta(hours=1)).timestamp() * 1000)
    records = [plivo_record(scripted, rid, start_ms=start_ms) for rid in ("rec-bad", "rec-good")]
    scripted.route("GET", path, plivo_listing(records))
    scripted.route("GET", f"{path}rec-bad/", Reply(json={"api_id": "x", **records[0]}))
    scripted.route("GET", "/media/rec-good.wav", AUDIO)
    scripted.route("GET", "/media/rec-bad.wav", Reply(status=404))
    config, dest = quick_config("[archive]", "max_failures = 1"), str(tmp_path / "a")
    common = ("--provider", "plivo", "--dest", dest)

    freeze(NIGHT)
    assert cli("--config", config, "run", *common, "--since", "-1d").exit_code == 1
    freeze(NIGHT + timedelta(days=1))
    r = cli("--config", config, "run", *common)
    assert r.exit_code == 1 and "retry-limit" in r.output  # given up: it haunts every night

    r = cli("--config", config, "forget", *common, "rec-bad", "rec-good", "rec-nope")
    assert r.exit_code == 1, r.output  # one kept, one unknown
    assert "forgot rec-bad (failed, 1 failed attempt(s), last: " in r.output
    assert "kept rec-good: archived" in r.output and "unknown rec-nope" in r.output
    assert summary_forget(r.output) == "forgot=1 kept=1 unknown=1"

    freeze(NIGHT + timedelta(days=2))
    r = cli("--config", config, "run", *common)
    assert r.exit_code == 0 and "rec-bad" not in r.output, r.output
    assert summary(r.output) == "listed=0 archived=0 skipped=0 pending=0 failed=0 unavailable=0"

    r = cli("--config", config, "forget", *common, "--archived", "rec-good")
    assert r.exit_code == 0 and "forgot rec-good (archived" in r.output, r.output
    r = cli("--config", config, "forget", *common, "rec-good")
    assert r.exit_code == 1 and summary_forget(r.output) == "forgot=0 kept=0 unknown=1"
    assert list(Path(dest).rglob("rec-good.json"))  # the archive itself is untouched


def test_forget_without_a_catalog_creates_none(cli, tmp_path: Path, plivo_at, scripted) -> None:
    plivo_at(scripted)
    catalog = tmp_path / "state" / "catalog.db"
    r = cli(
        "forget", "--provider", "plivo", "--dest", str(tmp_path / "a"), "--catalog", str(catalog), "rec-x"
    )
    assert r.exit_code == 1 and "unknown rec-x: no catalog at" in r.output, r.output
    assert not catalog.parent.exists() and not scripted.requests


def summary_forget(output: str) -> str:
    return [line for line in output.splitlines() if line.startswith("forgot=")][-1]


def test_run_since_starts_only_a_first_run(
    cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config, freeze
) -> None:
    path = plivo_at(scripted)
    scripted.route("GET", path, plivo_listing([]))
    config, common = quick_config(), ("--provider", "plivo", "--dest", str(tmp_path / "a"))

    freeze(NIGHT)
    r = cli("--config", config, "run", *common, "--since", "-3d")
    assert r.exit_code == 0, r.output
    assert earliest_listed(scripted, path) == NIGHT - timedelta(days=3)  # no watermark: --since
    assert "ignored" not in r.output
    first = len(scripted.hits(path))

    freeze(NIGHT + timedelta(days=1))
    r = cli("--config", config, "run", *common, "--since", "-7d")
    assert r.exit_code == 0, r.output
    # The watermark (the first run's start) minus the 2 h overlap, not a week back.
    assert earliest_listed(scripted, path, first) == NIGHT - timedelta(hours=2)
    assert "--since " in r.output and " ignored: " in r.output and "watermark" in r.output

    freeze(NIGHT + timedelta(days=2))
    second = len(scripted.hits(path))
    r = cli("--config", config, "run", *common)  # and without --since: the same start rule
    assert r.exit_code == 0, r.output
    assert earliest_listed(scripted, path, second) == NIGHT + timedelta(days=1) - timedelta(hours=2)


def test_run_since_in_the_future_is_a_usage_error(cli, tmp_path: Path, plivo_at, scripted, freeze) -> None:
    plivo_at(scripted)
    freeze(NIGHT)
    r = cli("run", "--provider", "plivo", "--dest", str(tmp_path / "a"), "--since", "2030-01-01")
    assert r.exit_code == 2 and "in the future" in r.output, r.output
    assert not scripted.requests


def test_doctor_says_where_requests_are_paced(cli, tmp_path: Path, plivo_at, scripted) -> None:
    plivo_at(scripted)
    state = tmp_path / "state"
    r = cli("doctor", "--provider", "plivo", "--catalog", str(state / "catalog.db"))
    assert "WARN  pacing:" in r.output and "each run paces alone" in r.output, r.output
    state.mkdir(exist_ok=True)  # (the catalog check may have made it)
    r = cli("doctor", "--provider", "plivo", "--catalog", str(state / "catalog.db"))
    assert (
        f"OK    pacing: requests per provider account are paced across every run whose catalog is in {state}"
        in r.output
    )
