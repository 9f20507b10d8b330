from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from archiver.errors import ConfigError, UnsafeKeyError
from archiver.models import (
    DEFAULT_LAYOUT,
    Probe,
    Recording,
    StoredFile,
    build_key,
    build_sidecar,
    check_key_part,
    render_sidecar,
    sanitize_url,
    validate_layout,
)


def rec(**kw: object) -> Recording:
    base: dict[str, object] = dict(
        provider="plivo",
        account="MA123",
        recording_id="r-1",
        state="complete",
        provider_state=None,
        started_at=datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC),
        ended_at=None,
        duration_seconds=1.5,
        media_url="https://user:pw@media.plivo.com/r-1.mp3?X-Amz-Signature=abc",
        format_hint="mp3",
        raw={"recording_id": "r-1", "recording_duration_ms": "1500.00000"},
    )
    base.update(kw)
    return Recording(**base)  # type: ignore[arg-type]


def test_default_layout_key() -> None:
    assert build_key(DEFAULT_LAYOUT, rec(), "mp3") == "plivo/MA123/2024/02/03/r-1.mp3"
    assert build_key(DEFAULT_LAYOUT, rec(), "json") == "plivo/MA123/2024/02/03/r-1.json"


@pytest.mark.parametrize("bad", ["../../etc/x", "..", "a/b", "a b", "", "x..y", "é"])
def test_unsafe_recording_ids_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeKeyError):
        build_key(DEFAULT_LAYOUT, rec(recording_id=bad), "wav")


def test_unsafe_account_refused() -> None:
    with pytest.raises(UnsafeKeyError):
        build_key(DEFAULT_LAYOUT, rec(account="../evil"), "wav")


def test_key_parts_allow_the_spec_alphabet() -> None:
    assert check_key_part("id", "rec-A.b_9") == "rec-A.b_9"


def test_recording_without_start_cannot_be_filed() -> None:
    with pytest.raises(UnsafeKeyError, match="no start time"):
        build_key(DEFAULT_LAYOUT, rec(started_at=None), "wav")


@pytest.mark.parametrize(
    "layout", ["{nope}/{recording_id}.{ext}", "/abs/{recording_id}.{ext}", "{provider}/x"]
)
def test_bad_layouts(layout: str) -> None:
    with pytest.raises(ConfigError):
        validate_layout(layout)


def test_sanitize_url_drops_credentials_and_query() -> None:
    assert (
        sanitize_url("https://user:pw@media.plivo.com:8443/a/r.mp3?sig=1#x")
        == "https://media.plivo.com:8443/a/r.mp3"
    )


def test_sidecar_document() -> None:
    f = StoredFile(
        "original",
        "plivo/MA123/2024/02/03/r-1.mp3",
        "mp3",
        10,
        "ab" * 32,
        Probe(duration_seconds=1.5, sample_rate=8000, channels=1, bitrate=32000, codec="mp3"),
    )
    r = rec()
    doc = build_sidecar(
        r,
        [f],
        media_url=r.media_url,
        fetched_at=datetime(2024, 5, 1, tzinfo=UTC),
        archived_at=datetime(2024, 5, 1, 0, 0, 1, tzinfo=UTC),
        version="9.9",
    )
    body = render_sidecar(doc)
    parsed = json.loads(body)
    assert parsed["schema"] == "archiver.sidecar/1"
    assert parsed["recording"]["started_at"] == "2024-02-03T04:05:06Z"
    assert parsed["recording"]["state"] is None
    assert parsed["provider_record"] == r.raw
    assert parsed["source"]["media_url"] == "https://media.plivo.com/r-1.mp3"
    assert parsed["files"][0]["content_type"] == "audio/mpeg"
    assert parsed["files"][0]["role"] == "original" and parsed["files"][0]["profile"] is None
    assert b"pw" not in body and b"Signature" not in body
    # pretty-printed with sorted keys, so two runs produce byte-identical sidecars
    assert body == (json.dumps(parsed, indent=2, sort_keys=True) + "\n").encode()
