"""Hostile listings (issue 8: 3.1, 3.2, 3.3, 3.5, 3.8): the provider clients against a
scripted provider that sends malformed records, unusable answers, broken call details and
pagination that never ends.

Each case is tried twice where it can be: on the provider generator itself (built as the
CLI builds it, over loopback HTTP), and through the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from scripted import Reply, Request, Scripted
from stand_in import RANGE, catapult_record, plivo_page, plivo_record, wav

from archiver.cli.wiring import build_provider
from archiver.config import environ, load_settings
from archiver.errors import ArchiverError, ListingFailed, ListingIncomplete, RecordingError
from archiver.models import Outcome, Recording
from archiver.providers.base import Provider
from archiver.providers.http import make_client

SINCE, UNTIL = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 2, 2, tzinfo=UTC)  # RANGE
WINDOW = "add_time [2024-02-01 00:00:00, 2024-02-02 00:00:00)"
AUDIO = Reply(body=wav(), headers={"Content-Type": "audio/wav"})


@pytest.fixture
def build(quick_config: Callable[..., str]) -> Iterator[Callable[[str], Provider]]:
    """A provider built exactly as the CLI builds it (cli/wiring.build_provider), from the
    environment the ``plivo_at``/``catapult_at`` fixtures set and the quick config."""
    clients = []

    def make(name: str) -> Provider:
        settings = load_settings(quick_config(), environ(), {})
        client = make_client(timeout=settings.http.timeout_seconds)
        clients.append(client)
        return build_provider(settings, name, client)

    yield make
    for client in clients:
        client.close()


def walk(provider: Provider) -> tuple[list[Recording | Outcome], ArchiverError | None]:
    """Everything the listing of RANGE yields, and the error that ended it (if any)."""
    got: list[Recording | Outcome] = []
    try:
        for item in provider.list_recordings(SINCE, UNTIL):
            got.append(item)
    except ArchiverError as exc:
        return got, exc
    return got, None


def by_id(items: list[Recording | Outcome]) -> dict[str, Recording | Outcome]:
    return {i.recording_id: i for i in items}


def failed(item: Recording | Outcome | None, *words: str) -> bool:
    return (
        isinstance(item, Outcome)
        and item.status == "failed"
        and item.stage == "provider"
        and all(w in (item.error or "") for w in words)
    )


def archive(cli: Any, config: str, provider: str, dest: Path, *more: str) -> Any:
    return cli("--config", config, "backfill", "--provider", provider, *RANGE, "--dest", str(dest), *more)


def failures(report: Path) -> dict[str, dict[str, Any]]:
    return {f["recording_id"]: f for f in json.loads(report.read_text())["failures"]}


# --- 3.1 one malformed record never stops the listing -----------------------------------------


def plivo_hostile_page(srv: Scripted) -> list[Any]:
    return [
        plivo_record(srv, "r-1"),
        plivo_record(srv, "r-nan", recording_start_ms="NaN"),
        plivo_record(srv, "r-big", recording_start_ms=1e20),
        plivo_record(srv, "r-inf", recording_duration_ms="Infinity", recording_end_ms=None),
        plivo_record(srv, "r-obj", from_number={"e164": "+1415"}),
        plivo_record(srv, "12345", recording_id=12345),
        "a record that is a string",
        {"call_uuid": "c-without-an-id", "recording_start_ms": "1706781600000"},
    ]


def test_plivo_malformed_records_fail_one_by_one_and_the_walk_goes_on(scripted, plivo_at, build) -> None:
    path = plivo_at(scripted)
    scripted.route(
        "GET",
        path,
        lambda req: (
            plivo_page(plivo_hostile_page(scripted), next_url=f"{path}?offset=20")
            if req.query["offset"] == ["0"]
            else plivo_page([plivo_record(scripted, "r-2")], offset=20)
        ),
    )
    items, error = walk(build("plivo"))
    assert error is None
    got = by_id(items)
    assert isinstance(got["r-1"], Recording) and isinstance(got["r-2"], Recording)  # the next page too
    assert isinstance(got["12345"], Recording)  # a numeric id is written out, not refused
    assert failed(got["r-nan"], "recording_start_ms", "NaN")
    assert failed(got["r-big"], "recording_start_ms", "epoch time")
    assert failed(got["r-inf"], "recording_duration_ms", "Infinity")
    assert failed(got["r-obj"], "from_number", "object")
    stand_ins = [i for rid, i in got.items() if rid.startswith("unidentified-")]
    assert len(stand_ins) == 2 and all(failed(i) for i in stand_ins)
    assert any(failed(i, "string") for i in stand_ins) and any(failed(i, "recording_id") for i in stand_ins)
    # A stand-in id is a function of the record: the same on every run, so it is remembered.
    again = {rid for rid in by_id(walk(build("plivo"))[0]) if rid.startswith("unidentified-")}
    assert again == {i.recording_id for i in stand_ins}


def test_plivo_get_recording_of_a_malformed_record_is_a_recording_error(scripted, plivo_at, build) -> None:
    path = plivo_at(scripted)
    for rid, over in {
        "r-nan": {"recording_start_ms": "NaN"},
        "r-inf": {"recording_duration_ms": 1e400},
    }.items():
        scripted.route(
            "GET", f"{path}{rid}/", Reply(json={"api_id": "x", **plivo_record(scripted, rid, **over)})
        )
    scripted.route("GET", f"{path}r-list/", Reply(json=["not", "an", "object"]))
    provider = build("plivo")
    for rid in ("r-nan", "r-inf", "r-list"):
        with pytest.raises(RecordingError) as caught:
            provider.get_recording(rid)
        assert caught.value.stage == "provider", caught.value


def test_plivo_malformed_records_through_the_cli(cli, tmp_path, scripted, plivo_at, quick_config) -> None:
    path = plivo_at(scripted)
    scripted.route("GET", path, plivo_page(plivo_hostile_page(scripted)))
    scripted.route("GET", r"/media/.*", AUDIO)
    report = tmp_path / "report.json"
    r = archive(cli, quick_config(), "plivo", tmp_path / "a", "--report", str(report))
    assert r.exit_code == 1, r.output
    assert "archived=2" in r.output and "failed=6" in r.output, r.output
    assert "Traceback" not in r.output
    fails = failures(report)
    assert fails["r-nan"]["stage"] == "provider" and "NaN" in fails["r-nan"]["error"]
    assert {p.stem for p in (tmp_path / "a").rglob("*.json")} == {"r-1", "12345"}


def catapult_hostile_page(srv: Scripted) -> list[Any]:
    return [
        catapult_record(srv, "rec-1"),
        catapult_record(srv, "rec-call", call=12345),
        catapult_record(srv, "rec-media", media=["a.wav", "b.wav"]),
        {k: v for k, v in catapult_record(srv, "rec-nostart").items() if k != "startTime"},
        catapult_record(srv, "rec-badstart", startTime="yesterday"),
        catapult_record(srv, "777", id=777),
        "a record that is a string",
        # Broken, but it started long before the range: not ours to report.
        catapult_record(srv, "rec-old", call=1, start="2019-01-01T00:00:00Z", end="2019-01-01T00:00:02Z"),
        # Still recording: no startTime yet is normal; it is pending, not failed.
        {"id": "rec-live", "state": "recording", "call": f"{srv.url}/calls/c-live"},
    ]


def test_catapult_malformed_records_fail_one_by_one_and_the_walk_goes_on(
    scripted, catapult_at, build
) -> None:
    root = catapult_at(scripted)
    scripted.route(
        "GET",
        f"{root}/recordings",
        lambda req: (
            Reply(
                json=catapult_hostile_page(scripted),
                headers={"Link": f'<{scripted.url}{root}/recordings?page=1&size=1000>; rel="next"'},
            )
            if req.query["page"] == ["0"]
            else Reply(json=[catapult_record(scripted, "rec-2")])
        ),
    )
    items, error = walk(build("catapult"))
    assert error is None
    got = by_id(items)
    assert isinstance(got["rec-1"], Recording) and isinstance(got["rec-2"], Recording)
    assert isinstance(got["777"], Recording)
    assert failed(got["rec-call"], "call", "number")
    assert failed(got["rec-media"], "media", "array")
    assert failed(got["rec-nostart"], "startTime")
    assert failed(got["rec-badstart"], "startTime", "yesterday")
    assert "rec-old" not in got
    live = got["rec-live"]
    assert isinstance(live, Recording) and live.state == "pending"
    assert sum(1 for i in items if failed(i, "string")) == 1


def test_catapult_get_recording_of_a_malformed_record_is_a_recording_error(
    scripted, catapult_at, build
) -> None:
    root = catapult_at(scripted)
    scripted.route("GET", f"{root}/recordings/rec-call", Reply(json=catapult_record(scripted, "x", call=5)))
    scripted.route("GET", f"{root}/recordings/rec-id", Reply(json=catapult_record(scripted, "x", id=[1])))
    provider = build("catapult")
    for rid in ("rec-call", "rec-id"):
        with pytest.raises(RecordingError) as caught:
            provider.get_recording(rid)
        assert caught.value.stage == "provider", caught.value


# --- 3.8 unknown Catapult states are unavailable (as 'error' is: final), named ------------------


def test_unknown_catapult_states_are_unavailable_with_the_state_named(
    cli, tmp_path, scripted, catapult_at, quick_config
) -> None:
    root = catapult_at(scripted)
    records = [
        catapult_record(scripted, "rec-ok"),
        catapult_record(scripted, "rec-expired", state="expired"),
        {k: v for k, v in catapult_record(scripted, "rec-stateless").items() if k != "state"},
        catapult_record(scripted, "rec-saving", state="saving"),
    ]
    scripted.route("GET", f"{root}/recordings", Reply(json=records))
    scripted.route("GET", f"{root}/calls/.*", Reply(json={"from": "+1415", "to": "+1416"}))
    scripted.route("GET", f"{root}/media/.*", AUDIO)
    report = tmp_path / "report.json"
    r = archive(cli, quick_config(), "catapult", tmp_path / "a", "--report", str(report))
    assert r.exit_code == 1, r.output
    assert "archived=1" in r.output and "pending=1" in r.output and "unavailable=2" in r.output, r.output
    gone = {u["recording_id"]: u for u in json.loads(report.read_text())["unavailable"]}
    assert gone["rec-expired"]["stage"] == "provider" and "'expired'" in gone["rec-expired"]["error"]
    assert gone["rec-stateless"]["stage"] == "provider" and "no state" in gone["rec-stateless"]["error"]
    assert not scripted.hits(f"{root}/media/c-rec-expired-1.wav")


# --- 3.2 a listing answer that cannot be used ends the run: exit 3, window and response named ----

PLIVO_UNUSABLE = {
    "400": Reply(status=400, json={"api_id": "x", "error": "add_time window too long"}),
    "404": Reply(status=404, json={"error": "not found"}),
    "405": Reply(status=405, body=b"<html>Method Not Allowed</html>", headers={"Content-Type": "text/html"}),
    "302": Reply(status=302, headers={"Location": "https://elsewhere.example/login"}),
    "no-envelope": Reply(json={"api_id": "x", "error": "maintenance"}),
    "array": Reply(json=[{"recording_id": "r-1"}]),
    "bad-utf8": Reply(
        body=b'{"api_id": "x", "meta": {"next": null}, "objects": [{"recording_id": "r-\xff\xfe"}]}',
        headers={"Content-Type": "application/json"},
    ),
}


@pytest.mark.parametrize("case", sorted(PLIVO_UNUSABLE))
def test_plivo_unusable_listing_is_listing_failed_naming_the_window(case, scripted, plivo_at, build) -> None:
    path = plivo_at(scripted)
    scripted.route("GET", path, PLIVO_UNUSABLE[case])
    items, error = walk(build("plivo"))
    assert isinstance(error, ListingFailed), error
    assert WINDOW in str(error)
    assert ("HTTP 200" if case in ("no-envelope", "array", "bad-utf8") else f"HTTP {case}") in str(error)
    assert len(scripted.hits(path)) == 1  # asking again gives the same answer: not retried


CATAPULT_UNUSABLE = {
    "400": Reply(status=400, json={"category": "bad-request", "code": "invalid-page", "message": "bad page"}),
    "404": Reply(status=404, json={"category": "not-found"}),
    "302": Reply(status=302, headers={"Location": "https://elsewhere.example/login"}),
    "object": Reply(json={"recordings": []}),
    "bad-utf8": Reply(body=b'[{"id": "rec-\xff"}]', headers={"Content-Type": "application/json"}),
}


@pytest.mark.parametrize("case", sorted(CATAPULT_UNUSABLE))
def test_catapult_unusable_listing_is_listing_failed_naming_the_page(
    case, scripted, catapult_at, build
) -> None:
    root = catapult_at(scripted)
    scripted.route("GET", f"{root}/recordings", CATAPULT_UNUSABLE[case])
    items, error = walk(build("catapult"))
    assert isinstance(error, ListingFailed), error
    assert f"Catapult listing page {scripted.url}{root}/recordings?page=0&size=1000" in str(error)
    assert ("HTTP 200" if case in ("object", "bad-utf8") else f"HTTP {case}") in str(error)
    assert len(scripted.hits(f"{root}/recordings")) == 1


@pytest.mark.parametrize(
    "link", ["http://127.0.0.1:99999/next", "http://127.0.0.1:port/next", "ftp://x/next"]
)
def test_catapult_next_link_that_cannot_be_requested(link, scripted, catapult_at, build) -> None:
    root = catapult_at(scripted)
    scripted.route(
        "GET",
        f"{root}/recordings",
        Reply(json=[catapult_record(scripted, "rec-1")], headers={"Link": f'<{link}>; rel="next"'}),
    )
    items, error = walk(build("catapult"))
    assert [i.recording_id for i in items] == ["rec-1"]  # what came before is good
    assert isinstance(error, ListingFailed), error
    assert "Catapult listing page" in str(error) and link in str(error)


@pytest.mark.parametrize(
    ("provider", "answer"),
    [
        ("plivo", Reply(status=400, json={"error": "window too long"})),
        ("catapult", Reply(json={"not": "an array"})),
        ("catapult", Reply(json=[], headers={"Link": '<http://127.0.0.1:99999/x>; rel="next"'})),
    ],
)
def test_unusable_listing_through_the_cli_exits_3_with_report(
    provider, answer, cli, tmp_path, scripted, plivo_at, catapult_at, quick_config
) -> None:
    path = plivo_at(scripted) if provider == "plivo" else catapult_at(scripted) + "/recordings"
    scripted.route("GET", path, answer)
    report = tmp_path / "report.json"
    r = archive(cli, quick_config(), provider, tmp_path / "a", "--report", str(report))
    assert r.exit_code == 3, r.output
    assert "Traceback" not in r.output
    assert ("Plivo listing " + WINDOW if provider == "plivo" else "Catapult listing page") in r.output
    assert "listed=0" in r.output
    assert json.loads(report.read_text())["fatal"]


# --- 3.3 optional call details never fail a recording or the run --------------------------------

CALLS_BROKEN = {
    "503": Reply(status=503, json={"category": "unavailable"}),
    "403": Reply(status=403, json={"category": "forbidden", "code": "no-calls-access"}),
    "500": Reply(status=500, body=b"oops"),
    "not-json": Reply(body=b"<html>maintenance</html>", headers={"Content-Type": "text/html"}),
    "bad-utf8": Reply(body=b'{"from": "+1\xff"}', headers={"Content-Type": "application/json"}),
    "array": Reply(json=["+1415"]),
}


@pytest.mark.parametrize("case", sorted(CALLS_BROKEN))
def test_broken_call_details_leave_numbers_empty(
    case, cli, tmp_path, scripted, catapult_at, quick_config
) -> None:
    root = catapult_at(scripted)
    records = [catapult_record(scripted, f"rec-{n}") for n in range(3)]
    scripted.route("GET", f"{root}/recordings", Reply(json=records))
    scripted.route("GET", f"{root}/calls/.*", CALLS_BROKEN[case])
    scripted.route("GET", f"{root}/media/.*", AUDIO)
    r = archive(cli, quick_config(), "catapult", tmp_path / "a", "--concurrency", "1")
    assert r.exit_code == 0, r.output
    assert "archived=3" in r.output and "failed=0" in r.output, r.output
    assert r.output.count("call details unavailable") == 1, r.output  # warned once per run
    for sidecar in (tmp_path / "a").rglob("*.json"):
        rec = json.loads(sidecar.read_text())["recording"]
        assert rec["from_number"] is None and rec["to_number"] is None
    calls = scripted.hits(f"{root}/calls/.*")
    if case in ("503", "403", "500", "not-json"):  # the endpoint as a whole: asked about once
        assert {c.path for c in calls} == {f"{root}/calls/c-rec-0"}, [c.path for c in calls]
        assert len(calls) <= 2  # quick_config: 2 attempts
    else:  # one unreadable call: the others are still asked
        assert len(calls) == 3


# --- 3.5 pagination that never ends ------------------------------------------------------------

GIVE_UP_AFTER = 30  # the stand-in stops the old endless walk with a 400 instead of hanging the suite


def endless(pages: Callable[[int], Reply]) -> Callable[[Request], Reply]:
    count = [0]

    def answer(req: Request) -> Reply:
        count[0] += 1
        if count[0] > GIVE_UP_AFTER:
            return Reply(status=400, json={"error": "the test gave up: the walk never ended"})
        return pages(count[0])

    return answer


def test_plivo_next_that_never_advances_ends_the_walk_incomplete(scripted, plivo_at, build) -> None:
    path = plivo_at(scripted)
    same = [plivo_record(scripted, f"r-{n}") for n in range(20)]
    scripted.route("GET", path, endless(lambda n: plivo_page(same, next_url=f"{path}?limit=20&offset=20")))
    items, error = walk(build("plivo"))
    assert isinstance(error, ListingIncomplete), error
    assert WINDOW in str(error)
    assert len(items) == 20
    assert len(scripted.hits(path)) <= 3


def test_plivo_pages_padded_with_repeats_end_the_walk_incomplete(scripted, plivo_at, build) -> None:
    path = plivo_at(scripted)
    old = [plivo_record(scripted, f"r-{n}") for n in range(19)]
    scripted.route(
        "GET",
        path,
        # Every page a new cursor (so never the same page twice), and only one new id on it.
        endless(
            lambda n: plivo_page([*old, plivo_record(scripted, f"new-{n}")], next_url=f"{path}?cursor=c{n}")
        ),
    )
    items, error = walk(build("plivo"))
    assert isinstance(error, ListingIncomplete), error
    assert "keep repeating" in str(error)
    assert len(scripted.hits(path)) <= 10


def test_catapult_links_to_ever_new_urls_end_the_walk_incomplete(scripted, catapult_at, build) -> None:
    root = catapult_at(scripted)
    same = [catapult_record(scripted, f"rec-{n}") for n in range(5)]
    scripted.route(
        "GET",
        f"{root}/recordings",
        endless(
            lambda n: Reply(
                json=same,
                headers={"Link": f'<{scripted.url}{root}/recordings?page={n}&cursor=c{n}>; rel="next"'},
            )
        ),
    )
    items, error = walk(build("catapult"))
    assert isinstance(error, ListingIncomplete), error
    assert "Catapult recordings listing" in str(error)
    assert len(items) == 5
    assert len(scripted.hits(f"{root}/recordings")) <= 3


def test_endless_plivo_listing_through_the_cli_leaves_the_window_unfinished(
    cli, tmp_path, scripted, plivo_at, quick_config
) -> None:
    path = plivo_at(scripted)
    scripted.route("GET", path, plivo_page([plivo_record(scripted, "r-1")], next_url=f"{path}?offset=20"))
    scripted.route("GET", r"/media/.*", AUDIO)
    first = archive(cli, quick_config(), "plivo", tmp_path / "a")
    assert "Traceback" not in first.output
    assert "archived=1" in first.output, first.output
    assert WINDOW in first.output  # the warning names the window
    assert first.exit_code == 1  # not everything selected could be listed: not a clean night
    asked = len(scripted.hits(path))
    assert asked <= 3
    again = archive(cli, quick_config(), "plivo", tmp_path / "a")
    assert len(scripted.hits(path)) > asked, again.output  # the window was not finished: listed again
    assert "skipped=1" in again.output, again.output
