"""The simulator's recordings, generated from a seed, in each provider's own JSON shape."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

UTC = UTC
IST = timezone(timedelta(hours=5, minutes=30))

CATAPULT_USER = "u-simulator0001"
CATAPULT_TOKEN = "t-simtoken0001"
CATAPULT_SECRET = "sim-secret-catapult"
PLIVO_AUTH_ID = "MASIMULATOR000000001"  # "MA" + 18 characters, like a real auth id
PLIVO_AUTH_TOKEN = "sim-secret-plivo"
UNSAFE_ID = "../../etc/x"


@dataclass
class SimRecording:
    """One recording as the simulator knows it; ``doc`` is what the API returns."""

    id: str
    provider: str
    started: datetime
    duration: float
    fmt: str | None
    state: str
    doc: dict[str, Any]
    media_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _catapult_time(value: datetime, with_ms: bool) -> str:
    if with_ms:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def catapult_recordings(
    n: int,
    seed: int,
    start: datetime,
    days: int,
    base_url: str,
    unsafe: bool = False,
    seconds: tuple[int, int] = (3, 40),
) -> list[SimRecording]:
    """``n`` Catapult recordings over ``days`` from ``start``; some pending or in error."""
    rng = random.Random(f"catapult-{seed}")
    out = []
    for i in range(n):
        # Times with and without milliseconds, as the API sends both; the audio lasts exactly
        # endTime - startTime as shown, which is all a client can know.
        with_ms = rng.random() < 0.5
        started = start + timedelta(seconds=rng.randrange(days * 86400))
        if with_ms:
            started += timedelta(milliseconds=rng.randrange(1000))
        lo, hi = seconds
        duration = round(rng.uniform(lo, hi), 3) if with_ms else float(rng.randrange(lo, hi + 1))
        ended = started + timedelta(milliseconds=round(duration * 1000))
        call_id = f"c-{rng.getrandbits(64):016x}"
        rec_id = UNSAFE_ID if unsafe and i == 0 else f"rec-{rng.getrandbits(64):016x}"
        state = {7: "saving", 13: "recording", 17: "error"}.get(i % 20, "complete")
        media_name = f"{call_id}-{1 + i % 3}.wav"
        doc: dict[str, Any] = {
            "id": rec_id,
            "startTime": _catapult_time(started, with_ms),
            "call": f"{base_url}/v1/users/{CATAPULT_USER}/calls/{call_id}",
            "state": state,
        }
        if state in ("complete", "saving", "error"):
            doc["endTime"] = _catapult_time(ended, with_ms)
        if state == "complete":
            doc["media"] = f"{base_url}/v1/users/{CATAPULT_USER}/media/{media_name}"
        out.append(
            SimRecording(
                rec_id,
                "catapult",
                started,
                duration,
                "wav",
                state,
                doc,
                media_name,
                {"call_id": call_id, "ended": ended, "call": _catapult_call(call_id, doc, i)},
            )
        )
    return out


def _catapult_call(call_id: str, doc: dict[str, Any], i: int) -> dict[str, Any] | None:
    """The call behind a recording; some calls are gone (purged), as old ones can be."""
    if i % 11 == 5:
        return None
    inbound = i % 2 == 0
    caller, agent = f"+1415555{i % 10000:04d}", f"+1650555{(i * 7) % 10000:04d}"
    call = {
        "id": call_id,
        "direction": "in" if inbound else "out",
        "from": caller if inbound else agent,
        "to": agent if inbound else caller,
        "state": "completed",
        "startTime": doc["startTime"],
        "recordingFileFormat": "wav",
    }
    if "endTime" in doc:
        call["endTime"] = doc["endTime"]
    return call


def plivo_recordings(
    n: int,
    seed: int,
    start: datetime,
    days: int,
    api_url: str,
    media_url: str,
    unsafe: bool = False,
    seconds: tuple[int, int] = (3, 40),
) -> list[SimRecording]:
    """``n`` Plivo recordings; newest first is the API's order, applied when listing."""
    rng = random.Random(f"plivo-{seed}")
    newer_than = start + timedelta(days=days // 3)  # older objects lack from/to numbers
    out = []
    for i in range(n):
        added = start + timedelta(seconds=rng.randrange(days * 86400), microseconds=rng.randrange(10**6))
        duration = round(rng.uniform(*seconds), 3)
        started = added - timedelta(seconds=duration)
        rec_id = UNSAFE_ID if unsafe and i == 0 else _uuid(rng)
        fmt = "wav" if i % 5 == 3 else "mp3"
        style = i % 3
        if style == 0:
            add_time = added.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S.%f%z")
            add_time = add_time[:-2] + ":" + add_time[-2:]
        elif style == 1:
            add_time = added.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00:00"
        else:
            add_time = added.strftime("%Y-%m-%dT%H:%M:%S.%f")  # legacy: no offset, UTC
        ms = duration * 1000
        # One recording in four is served through the API host, which redirects to the media
        # host, as a CDN in front of S3 would.
        via = api_url + "/media-redirect" if i % 4 == 1 else media_url
        doc: dict[str, Any] = {
            "recording_id": rec_id,
            "call_uuid": _uuid(rng),
            "recording_type": "conference" if i % 6 == 0 else "normal",
            "recording_format": fmt,
            "recording_url": f"{via}/recordings/{rec_id if not unsafe or i else 'unsafe'}.{fmt}",
            "resource_uri": f"/v1/Account/{PLIVO_AUTH_ID}/Recording/{rec_id}/",
            "conference_name": (f"conf-{i}" if i % 6 == 0 else rng.choice(["", None])),
            "add_time": add_time,
            "recording_duration_ms": f"{ms:.5f}" if i % 2 else ms,
            "recording_start_ms": f"{int(started.timestamp() * 1000)}.00000",
            "recording_end_ms": str(int(added.timestamp() * 1000)),
            "rounded_recording_duration": int(-(-duration // 60) * 60),
            "recording_storage_duration": 10,
            "recording_storage_rate": 0.0004,
            "monthly_recording_storage_amount": 0,
        }
        if added >= newer_than:
            doc["from_number"] = f"1415555{rng.randrange(10000):04d}"
            doc["to_number"] = rng.choice([f"1650555{rng.randrange(10000):04d}", "sip:agent@example.com"])
        out.append(
            SimRecording(
                rec_id,
                "plivo",
                started,
                duration,
                fmt,
                "complete",
                doc,
                extra={"added": added, "info_header": i % 7 != 0},
            )
        )
    return out


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
