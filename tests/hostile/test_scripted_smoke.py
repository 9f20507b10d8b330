"""The scripted stand-in is a faithful enough provider for the happy path: both clients
archive from it, so every hostile test starts from a run that works."""

from __future__ import annotations

from pathlib import Path

from scripted import Reply
from stand_in import RANGE, catapult_record, plivo_page, plivo_record, wav


def test_plivo_and_catapult_archive_from_the_scripted_server(
    cli, tmp_path: Path, scripted, plivo_at, catapult_at, quick_config
) -> None:
    plist = plivo_at(scripted)
    scripted.route("GET", plist, plivo_page([plivo_record(scripted, "r-1")]))
    scripted.route("GET", r"/media/.*", Reply(body=wav(), headers={"Content-Type": "audio/wav"}))
    root = catapult_at(scripted)
    scripted.route("GET", f"{root}/recordings", Reply(json=[catapult_record(scripted, "rec-1")]))
    scripted.route("GET", f"{root}/calls/.*", Reply(json={"from": "+1415", "to": "+1416", "direction": "in"}))
    scripted.route("GET", f"{root}/media/.*", Reply(body=wav(), headers={"Content-Type": "audio/wav"}))
    for provider in ("plivo", "catapult"):
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
        assert r.exit_code == 0, r.output
        assert "archived=1" in r.output
    assert len(list((tmp_path / "a").rglob("*.json"))) == 2
