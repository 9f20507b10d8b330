"""Broken media is never archived, and never a reason to delete the provider's copy
(issue 8, item 1.3); the transcode engine is chosen from a size bound a lying header cannot
shrink (item 3.9)."""

from __future__ import annotations

import functools
import json
import random
import struct
from pathlib import Path

import pytest
from scripted import Reply, Scripted
from stand_in import PLIVO_ID, RANGE, plivo_backfill, plivo_page, plivo_record, wav

from archiver.media.transcode import find_ffmpeg
from archiver.sim import audio

DELETE = rf"/v1/Account/{PLIVO_ID}/Recording/[^/]+/"


@functools.lru_cache(maxsize=4)
def mp3(seconds: float) -> bytes:
    """A real CBR MP3 with an Info header (frame count), as ffmpeg writes it to a file."""
    return audio.mp3_bytes(seconds, 3, find_ffmpeg(None))


def riff_noise() -> bytes:
    noise = random.Random(8).randbytes(4000)
    return b"RIFF" + struct.pack("<I", 4 + len(noise)) + b"WAVE" + noise


def serve(srv: Scripted, plist: str, fmt: str, seconds: float, reply: Reply) -> None:
    """One Plivo recording ``r-1`` whose media ``reply`` answers; DELETE answers 204."""
    rec = plivo_record(
        srv, "r-1", seconds=seconds, recording_format=fmt, recording_url=f"{srv.url}/media/r-1.{fmt}"
    )
    srv.route("GET", plist, plivo_page([rec]))
    srv.route("GET", r"/media/.*", reply)
    srv.route("DELETE", DELETE, Reply(status=204))


def files_under(dest: Path) -> list[Path]:
    """Files a recording left in the destination (staging is the run's scratch space)."""
    return [
        p
        for p in dest.rglob("*")
        if p.is_file()
        and ".archiver-staging" not in p.parts
        and not p.relative_to(dest).parts[0].startswith("_")
    ]


BROKEN = {
    "3-byte ID3": ("mp3", 2.0, lambda: Reply(body=b"ID3")),
    "12-byte RIFF WAVE": ("wav", 2.0, lambda: Reply(body=b"RIFF\x04\x00\x00\x00WAVE")),
    "RIFF WAVE then random bytes": ("wav", 2.0, lambda: Reply(body=riff_noise())),
    # The server says (and sends) fewer bytes than the WAV: the header claims 2 s of audio.
    "WAV with a short Content-Length": ("wav", 2.0, lambda: Reply(body=wav(2.0), length=len(wav(2.0)) // 2)),
    # The Info frame still counts all frames, so mutagen says 10 s: the frames say 5.
    "MP3 cut to half its frames": ("mp3", 10.0, lambda: Reply(body=mp3(10.0)[: len(mp3(10.0)) // 2])),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_media_fails_at_probe_and_is_not_deleted(
    name: str, cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config
) -> None:
    fmt, seconds, reply = BROKEN[name]
    serve(scripted, plivo_at(scripted), fmt, seconds, reply())
    dest, report = tmp_path / "a", tmp_path / "report.json"
    r = cli(
        *plivo_backfill(quick_config(), dest),
        "--delete-after-archive",
        "--report",
        str(report),
    )
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    failures = json.loads(report.read_text())["failures"]
    assert [(f["recording_id"], f["stage"]) for f in failures] == [("r-1", "probe")]
    assert "r-1" in failures[0]["error"] and "is not the recording" in failures[0]["error"]
    assert files_under(dest) == []
    assert scripted.hits(DELETE, "DELETE") == []


@pytest.mark.parametrize(("fmt", "body"), [("wav", lambda: wav(3.0)), ("mp3", lambda: mp3(3.0))])
def test_good_media_is_archived_and_deleted(
    fmt: str, body, cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config
) -> None:
    serve(scripted, plivo_at(scripted), fmt, 3.0, Reply(body=body()))
    dest = tmp_path / "a"
    r = cli(
        *plivo_backfill(quick_config(), dest),
        "--delete-after-archive",
    )
    assert r.exit_code == 0, r.output
    assert "archived=1" in r.output
    original = json.loads(next(dest.rglob("r-1.json")).read_text())["files"][0]
    assert original["probe_error"] is None and original["duration_seconds"] == pytest.approx(3.0, abs=0.3)
    assert len(scripted.hits(DELETE, "DELETE")) == 1


def test_an_older_archive_with_a_probe_error_is_not_deleted(
    cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config
) -> None:
    """Archives from before the check may hold a copy that never decoded: the sidecar says so
    (probe_error, no duration), and such a copy does not count as verified."""
    serve(scripted, plivo_at(scripted), "wav", 3.0, Reply(body=wav(3.0)))
    dest = tmp_path / "a"
    args = ("--config", quick_config(), "backfill", "--provider", "plivo", *RANGE, "--dest", str(dest))
    assert cli(*args, "--catalog", str(tmp_path / "first.db")).exit_code == 0
    sidecar = next(dest.rglob("r-1.json"))
    doc = json.loads(sidecar.read_text())
    doc["files"][0].update(probe_error="mutagen could not read the file", duration_seconds=None)
    sidecar.write_text(json.dumps(doc))
    report = tmp_path / "report.json"
    # A fresh catalog: the run lists r-1 again and finds it archived (a deletion candidate).
    r = cli(
        *args, "--catalog", str(tmp_path / "second.db"), "--delete-after-archive", "--report", str(report)
    )
    assert "skipped=1" in r.output, r.output
    assert scripted.hits(DELETE, "DELETE") == []
    deletions = json.loads(report.read_text())["deletions"]
    assert [d["result"] for d in deletions] == ["kept"]
    assert "not verified to decode" in deletions[0]["detail"]


def lying_mp3(seconds: float, claimed_frames: int) -> bytes:
    """A real MP3 whose Info frame's frame count is rewritten (a lying header)."""
    body = bytearray(mp3(seconds))
    at = body.find(b"Info")
    assert at > 0 and int.from_bytes(body[at + 4 : at + 8], "big") & 1  # the frames field is there
    body[at + 8 : at + 12] = claimed_frames.to_bytes(4, "big")
    return bytes(body)


def test_a_lying_info_frame_is_encoded_in_full(
    cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config
) -> None:
    """10 minutes of MP3 whose Info frame claims 1 s: mutagen believes it, the frame walk
    does not, and the one streaming ffmpeg encodes all of it (its memory does not depend on
    what a header claims)."""
    body = lying_mp3(600.0, claimed_frames=14)  # 14 frames of 576 samples at 8 kHz: 1 s
    serve(scripted, plivo_at(scripted), "mp3", 600.0, Reply(body=body))
    dest = tmp_path / "a"
    r = cli(
        "-vv",
        "--config",
        quick_config(),
        "backfill",
        "--provider",
        "plivo",
        *RANGE,
        "--dest",
        str(dest),
        "--transcode",
        "mp3-mono-32k",
    )
    assert r.exit_code == 0, r.output
    files = json.loads(next(dest.rglob("r-1.json")).read_text())["files"]
    assert [f["duration_seconds"] == pytest.approx(600.0, abs=1.0) for f in files] == [True, True]
