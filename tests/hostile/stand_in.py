"""Provider-shaped data for the scripted server: records, pages, real audio."""

from __future__ import annotations

import functools
from typing import Any

from scripted import Reply, Scripted

from archiver.sim import audio

PLIVO_ID = "MAHOSTILE0000000001"
PLIVO_TOKEN = "plivo-token-Zq8sX3"
CAT_USER = "u-hostile"
CAT_TOKEN = "t-catapult-token-K7"
CAT_SECRET = "catapult-secret-W9e"
SECRETS = (PLIVO_TOKEN, CAT_TOKEN, CAT_SECRET)


@functools.lru_cache(maxsize=32)
def wav(seconds: float = 2.0, seed: int = 1) -> bytes:
    """A real 8 kHz PCM WAV of ``seconds``."""
    return audio.wav_bytes(seconds, seed)


def plivo_record(
    srv: Scripted, rid: str, *, start_ms: int = 1706781600000, seconds: float = 2.0, **over: Any
) -> dict[str, Any]:
    """A Plivo recording object whose media lives on ``srv`` at ``/media/{rid}.wav``."""
    doc: dict[str, Any] = {
        "recording_id": rid,
        "call_uuid": f"call-{rid}",
        "recording_type": "normal",
        "recording_format": "wav",
        "recording_url": f"{srv.url}/media/{rid}.wav",
        "resource_uri": f"/v1/Account/{PLIVO_ID}/Recording/{rid}/",
        "conference_name": "",
        "add_time": "2024-02-01 10:00:00.000000+00:00",
        "recording_duration_ms": f"{seconds * 1000:.5f}",
        "recording_start_ms": str(start_ms),
        "recording_end_ms": str(start_ms + int(seconds * 1000)),
        "from_number": "14155550100",
        "to_number": "14155550199",
    }
    doc.update(over)
    return doc


def plivo_page(objects: list[dict[str, Any]], next_url: str | None = None, offset: int = 0) -> Reply:
    """One Plivo list page."""
    meta = {"limit": 20, "next": next_url, "offset": offset, "previous": None, "total_count": len(objects)}
    return Reply(json={"api_id": "x", "meta": meta, "objects": objects})


def catapult_record(
    srv: Scripted,
    rid: str,
    *,
    start: str = "2024-02-01T10:00:00Z",
    end: str = "2024-02-01T10:00:02Z",
    **over: Any,
) -> dict[str, Any]:
    """A complete Catapult recording whose media lives on ``srv``."""
    doc: dict[str, Any] = {
        "id": rid,
        "startTime": start,
        "endTime": end,
        "call": f"{srv.url}/v1/users/{CAT_USER}/calls/c-{rid}",
        "media": f"{srv.url}/v1/users/{CAT_USER}/media/c-{rid}-1.wav",
        "state": "complete",
    }
    doc.update(over)
    return doc


RANGE = ("--since", "2024-02-01", "--until", "2024-02-02")


def plivo_listing(records: list[dict[str, Any]]) -> Any:
    """A Plivo list endpoint over ``records`` (offset paging, ``meta.next`` as Plivo writes it,
    the add_time window applied to ``recording_start_ms``)."""
    from datetime import UTC, datetime

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    def answer(req: Any) -> Reply:
        q = {k: v[0] for k, v in req.query.items()}
        limit, offset = int(q.get("limit", "20")), int(q.get("offset", "0"))
        lo, hi = parse(q["add_time__gte"]), parse(q["add_time__lt"])
        chosen = [
            r for r in records if lo <= datetime.fromtimestamp(int(r["recording_start_ms"]) / 1000, UTC) < hi
        ]
        page = chosen[offset : offset + limit]
        more = offset + limit < len(chosen)
        nxt = f"/v1/Account/{PLIVO_ID}/Recording/?limit={limit}&offset={offset + limit}" if more else None
        return plivo_page(page, nxt, offset)

    return answer


def plivo_get_one(records: list[dict[str, Any]]) -> Any:
    """Plivo's get-one endpoint (``Recording/{id}/``) over ``records``; 404 for others."""

    def answer(req: Any) -> Reply:
        rid = req.path.rstrip("/").rsplit("/", 1)[-1]
        for r in records:
            if r["recording_id"] == rid:
                return Reply(json={"api_id": "x", **r})
        return Reply(status=404, json={"api_id": "x", "error": "not found"})

    return answer


def serve_plivo(srv: Scripted, list_path: str, records: list[dict[str, Any]]) -> None:
    """Route Plivo's list and get-one endpoints over ``records``."""
    srv.route("GET", list_path, plivo_listing(records))
    srv.route("GET", list_path + r"[^/]+/", plivo_get_one(records))


def plivo_backfill(config: str, dest: Any, *extra: str) -> list[str]:
    """The argv of a Plivo backfill over RANGE into ``dest`` with a ``--config`` file."""
    return ["--config", config, "backfill", "--provider", "plivo", *RANGE, "--dest", str(dest), *extra]


def hold_media(srv: Scripted, free: int, body: bytes, wait: float = 60.0) -> tuple[Any, Any]:
    """Serve ``/media/...`` with ``body``, the first ``free`` downloads at once and the others
    only once the returned gate is set: a run then certainly has work in flight. Returns
    (gate, served), ``served`` counting requests per path."""
    import threading
    from collections import Counter

    gate = threading.Event()
    served: Counter[str] = Counter()
    lock = threading.Lock()

    def media(req: Any) -> Reply:
        with lock:
            served[req.path] += 1
            n = sum(served.values())
        if n > free:
            gate.wait(wait)
        return Reply(body=body, headers={"Content-Type": "audio/wav"})

    srv.route("GET", r"/media/.*", media)
    return gate, served
