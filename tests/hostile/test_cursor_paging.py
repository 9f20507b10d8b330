"""Plivo's cursor paging (issue 9, item 1) against a scripted deployment: what the client
sends after each kind of ``meta.next``, and a cursor walk brought back to page 1, through the
CLI, ends after two requests and leaves its window unfinished."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from scripted import Reply, Request, Scripted
from stand_in import RANGE, plivo_page, plivo_record, wav

from archiver.cli.wiring import build_provider
from archiver.config import environ, load_settings
from archiver.errors import ListingIncomplete
from archiver.providers.base import Provider
from archiver.providers.http import make_client

SINCE, UNTIL = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 2, 2, tzinfo=UTC)  # RANGE
WINDOW = "add_time [2024-02-01 00:00:00, 2024-02-02 00:00:00)"
FILTERS = {"add_time__gte": ["2024-02-01 00:00:00"], "add_time__lt": ["2024-02-02 00:00:00"]}
AUDIO = Reply(body=wav(), headers={"Content-Type": "audio/wav"})


@pytest.fixture
def build(quick_config: Callable[..., str]) -> Iterator[Callable[[], Provider]]:
    """The Plivo provider built as the CLI builds it, pointed at the scripted server."""
    clients = []

    def make() -> Provider:
        settings = load_settings(quick_config(), environ(), {})
        client = make_client(timeout=settings.http.timeout_seconds)
        clients.append(client)
        return build_provider(settings, "plivo", client)

    yield make
    for client in clients:
        client.close()


def listing(srv: Scripted, n: int) -> list[dict[str, Any]]:
    return [plivo_record(srv, f"r-{i:02d}") for i in range(n)]


def paging_of(req: Request) -> dict[str, list[str]]:
    """What a list request sent besides its filters, which must always be ours."""
    assert {k: req.query.get(k) for k in FILTERS} == FILTERS, req.query
    return {k: v for k, v in req.query.items() if k not in FILTERS}


def test_a_cursor_is_followed_with_our_filters_and_no_offset(scripted, plivo_at, build) -> None:
    """A cursor deployment: an offset is ignored, ``meta.next`` carries ``limit`` and a cursor
    (and, here, an offset beside it, which a hybrid deployment would apply: never sent)."""
    path = plivo_at(scripted)
    records = listing(scripted, 45)

    def answer(req: Request) -> Reply:
        at = {"": 0, "c-20": 20, "c-40": 40}[req.query.get("cursor", [""])[0]]
        more = at + 20 < len(records)
        nxt = f"{path}?limit=20&offset=0&cursor=c-{at + 20}" if more else None
        return plivo_page(records[at : at + 20], next_url=nxt)

    scripted.route("GET", path, answer)
    got = [r.recording_id for r in build().list_recordings(SINCE, UNTIL)]
    assert got == [r["recording_id"] for r in records]
    sent = [paging_of(r) for r in scripted.hits(path)]
    assert sent == [
        {"limit": ["20"], "offset": ["0"]},
        {"limit": ["20"], "cursor": ["c-20"]},
        {"limit": ["20"], "cursor": ["c-40"]},
    ]


def test_an_offset_in_next_is_taken_as_it_is(scripted, plivo_at, build) -> None:
    """Legacy offset paging: the next request carries meta.next's offset (not one we count)."""
    path = plivo_at(scripted)
    records = listing(scripted, 30)

    def answer(req: Request) -> Reply:
        at = int(req.query["offset"][0])
        # This deployment pages by 15 whatever the limit: only its own next offset is right.
        nxt = f"{path}?limit=20&offset={at + 15}" if at + 15 < len(records) else None
        return plivo_page(records[at : at + 15], next_url=nxt, offset=at)

    scripted.route("GET", path, answer)
    got = [r.recording_id for r in build().list_recordings(SINCE, UNTIL)]
    assert got == [r["recording_id"] for r in records]
    assert [paging_of(r) for r in scripted.hits(path)] == [
        {"limit": ["20"], "offset": ["0"]},
        {"limit": ["20"], "offset": ["15"]},
    ]


def test_without_meta_a_full_page_asks_for_the_next_offset(scripted, plivo_at, build) -> None:
    path = plivo_at(scripted)
    records = listing(scripted, 25)

    def answer(req: Request) -> Reply:
        at = int(req.query["offset"][0])
        return Reply(json={"api_id": "x", "objects": records[at : at + 20]})  # no meta at all

    scripted.route("GET", path, answer)
    got = [r.recording_id for r in build().list_recordings(SINCE, UNTIL)]
    assert got == [r["recording_id"] for r in records]
    assert [paging_of(r)["offset"] for r in scripted.hits(path)] == [["0"], ["20"]]  # short page: the end


def test_a_next_we_cannot_follow_leaves_the_window_unfinished(scripted, plivo_at, build) -> None:
    """``meta.next`` says there is more, in a form that carries neither a cursor nor an
    offset: the walk ends incomplete (never taken as the end of the window)."""
    path = plivo_at(scripted)
    scripted.route("GET", path, plivo_page(listing(scripted, 20), next_url=f"{path}?page_token=p2"))
    got: list[str] = []
    with pytest.raises(ListingIncomplete, match="neither a cursor nor an offset") as info:
        got.extend(r.recording_id for r in build().list_recordings(SINCE, UNTIL))
    assert len(got) == 20  # what the page brought is good
    assert WINDOW in str(info.value)
    assert len(scripted.hits(path)) == 1


def test_a_cursor_walk_brought_back_to_page_one_ends_and_its_window_stays_unfinished(
    cli, tmp_path, scripted, plivo_at, quick_config
) -> None:
    """Every cursor leads back to page 1 (what a hybrid deployment does to a client that keeps
    sending ``offset=0``): two requests, a warning naming the window, the 20 recordings
    archived, and the window listed again by the next run."""
    path = plivo_at(scripted)
    records = listing(scripted, 20)
    counter = [0]

    def answer(req: Request) -> Reply:
        counter[0] += 1
        if counter[0] > 10:
            return Reply(status=400, json={"error": "the test gave up: the walk never ended"})
        return plivo_page(records, next_url=f"{path}?limit=20&cursor=again-{counter[0]}")

    scripted.route("GET", path, answer)
    scripted.route("GET", r"/media/.*", AUDIO)
    dest = tmp_path / "a"
    args = ("--config", quick_config(), "backfill", "--provider", "plivo", *RANGE, "--dest", str(dest))
    first = cli(*args)
    assert "Traceback" not in first.output
    assert "archived=20" in first.output, first.output
    assert WINDOW in first.output and "stays unfinished" in first.output  # the warning names the window
    assert first.exit_code == 1, first.output
    hits = scripted.hits(path)
    assert [paging_of(r) for r in hits] == [
        {"limit": ["20"], "offset": ["0"]},
        {"limit": ["20"], "cursor": ["again-1"]},
    ]
    again = cli(*args)
    assert len(scripted.hits(path)) == 4, again.output  # not finished: listed again, bounded again
    assert "skipped=20" in again.output, again.output
