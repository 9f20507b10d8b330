"""Format sniffing, provider object parsing, credential scope, page guards: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from archiver.errors import ListingIncomplete
from archiver.media.fetch import describe_non_audio, sniff
from archiver.providers import catapult, plivo
from archiver.providers.base import Dedupe, PageWalk
from archiver.providers.http import CredentialScope


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "mp3"),
        (b"\xff\xfb\x90\x00", "mp3"),
        (b"\xff\xe3\x18\xc4", "mp3"),
        (b"OggS\x00\x02", "ogg"),
        (b"fLaC\x00\x00", "flac"),
        (b"<!DOCTYPE html><html>", None),
        (b'{"error": "x"}', None),
        (b"", None),
        (b"RIFF\x24\x00\x00\x00AVI LIST", None),
    ],
)
def test_sniff(head: bytes, fmt: str | None) -> None:
    assert sniff(head) == fmt


def test_describe_non_audio() -> None:
    assert describe_non_audio(b"") == "an empty body"
    assert describe_non_audio(b"  <!DOCTYPE html><html>") == "an HTML page"
    assert describe_non_audio(b"<?xml version='1.0'?>") == "an XML/HTML document"
    assert describe_non_audio(b'{"a":1}') == "a JSON document"


def test_catapult_recording_parse() -> None:
    item = {
        "id": "rec-1",
        "state": "complete",
        "startTime": "2024-01-01T00:00:00Z",
        "endTime": "2024-01-01T00:00:12.500Z",
        "call": "https://api.catapult.inetwork.com/v1/users/u-1/calls/c-abc",
        "media": "https://api.catapult.inetwork.com/v1/users/u-1/media/c-abc-1 x.wav",
    }
    r = catapult.parse_recording(item, "u-1")
    assert r.state == "complete" and r.call_id == "c-abc" and r.duration_seconds == 12.5
    assert r.media_url is not None and r.media_url.endswith("/media/c-abc-1%20x.wav")
    assert r.format_hint == "wav" and r.raw is item
    pending = catapult.parse_recording(
        {"id": "rec-2", "state": "recording", "startTime": "2024-01-01T00:00:00Z"}, "u-1"
    )
    assert pending.state == "pending" and pending.media_url is None and pending.duration_seconds is None
    at = {"startTime": "2024-01-01T00:00:00Z"}
    assert catapult.parse_recording({"id": "r", "state": "error", **at}, "u").state == "error"
    expired = catapult.parse_recording({"id": "r", "state": "expired", **at}, "u")
    assert expired.state == "error" and expired.provider_state == "expired"


def test_plivo_recording_parse_numbers_as_strings_and_offsets() -> None:
    item = {
        "recording_id": "r-1",
        "call_uuid": "c-1",
        "recording_format": "mp3",
        "recording_url": "https://media.plivo.com/r-1.mp3",
        "conference_name": "",
        "add_time": "2014-08-05 16:15:15.852059+05:30",
        "recording_duration_ms": "345100.00000",
        "recording_start_ms": "1407235170752.00000",
        "recording_end_ms": 1407235515852,
        "from_number": 14155550100,
    }
    r = plivo.parse_recording(item, "MA1")
    assert r.duration_seconds == pytest.approx(345.1)
    assert r.started_at == datetime.fromtimestamp(1407235170.752, tz=UTC)
    assert r.conference_name is None and r.from_number == "14155550100" and r.to_number is None
    legacy = plivo.parse_recording(
        {"recording_id": "r-2", "add_time": "2012-02-04T23:33:08.079231", "recording_duration_ms": 1000},
        "MA1",
    )
    assert legacy.started_at == datetime(2012, 2, 4, 23, 33, 8, 79231, tzinfo=UTC)
    assert legacy.duration_seconds == 1.0


def test_plivo_time_filter_format() -> None:
    assert plivo.plivo_time(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02 03:04:05"
    assert plivo.plivo_time(datetime(2024, 1, 2, 3, 4, 5, 7, tzinfo=UTC)) == "2024-01-02 03:04:05.000007"


def test_credentials_only_for_the_api_origin_and_trusted_https_hosts() -> None:
    scope = CredentialScope("https://api.plivo.com", "MA1", "secret", trusted_suffixes=(".plivo.com",))
    assert scope.allows("https://api.plivo.com/v1/Account/MA1/Recording/")
    assert scope.allows("https://media.plivo.com/r.mp3")
    assert not scope.allows("http://media.plivo.com/r.mp3")  # never in clear text
    assert not scope.allows("https://s3.amazonaws.com/plivo/r.mp3")
    assert not scope.allows("https://evilplivo.com/r.mp3")
    assert not scope.allows("https://plivo.com.evil.example/x")
    assert "secret" not in repr(scope)
    local = CredentialScope("http://127.0.0.1:5000", "u", "p")
    assert local.allows("http://127.0.0.1:5000/media/x")
    assert not local.allows("http://127.0.0.1:5001/media/x")


def test_page_walk_stops_repeats_pages_without_news_and_padding() -> None:
    walk = PageWalk("x", max_pages=3)
    walk.visit("a")
    with pytest.raises(ListingIncomplete, match="same page twice"):
        walk.visit("a")
    walk = PageWalk("x", max_pages=2)
    walk.visit("a")
    walk.visit("b")
    with pytest.raises(ListingIncomplete, match="more than 2 pages"):
        walk.visit("c")
    walk = PageWalk("x")
    walk.visit("a")
    walk.page(20, 20)
    walk.visit("b")
    with pytest.raises(ListingIncomplete, match=r"page 2 \(b\) brought no recording"):
        walk.page(20, 0)
    # One new id per page of 20 is a provider padding pages with repeats: the cap (twice
    # the pages the listed ids fill, plus the margin) stops it after a handful of pages.
    walk = PageWalk("x", margin=5)
    with pytest.raises(ListingIncomplete, match="pages keep repeating"):
        for n in range(100):
            walk.visit(str(n))
            walk.page(20, 20 if n == 0 else 1)
    assert walk.pages == 8
    # An honest long walk with a few repeats per page is never cut short.
    walk = PageWalk("x")
    for n in range(5000):
        walk.visit(str(n))
        walk.page(20, 17)
    walk.visit("last")
    walk.page(0, 0)


def test_dedupe() -> None:
    d = Dedupe()
    assert [d.first(i) for i in ["a", "b", "a"]] == [True, True, False]
    assert d.duplicates == 1
