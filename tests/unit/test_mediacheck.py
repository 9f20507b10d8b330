"""The structural checks that decide whether a downloaded copy is the recording."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from archiver.media.mediacheck import (
    DamagedMedia,
    decoded_duration,
    durations_agree,
    mp3_duration,
    verified_probe,
    wav_duration,
)
from archiver.models import Probe

# MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417-byte frames of 1152 samples.
HEADER = b"\xff\xfb\x90\x00"
FRAME = HEADER + bytes(413)
FRAME_SECONDS = 1152 / 44100


def wav(pcm_bytes: int, *, declared: int | None = None, rate: int = 8000, extra: bytes = b"") -> bytes:
    """A mono 16-bit WAV with ``pcm_bytes`` of audio; ``declared`` lies about the data size."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    size = pcm_bytes if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + extra + b"data" + struct.pack("<I", size)
    return b"RIFF" + struct.pack("<I", len(body) + pcm_bytes - 4) + body + bytes(pcm_bytes)


def mp3(frames: int, *, info: bool = False, id3: bytes = b"") -> bytes:
    head = (HEADER + bytes(32) + b"Info" + bytes(377)) if info else b""
    return id3 + head + FRAME * frames


def id3v2(body_size: int) -> bytes:
    size = bytes(((body_size >> s) & 0x7F) for s in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + size + bytes(body_size)


def test_wav_duration_is_the_data_present() -> None:
    assert wav_duration(wav(16000)) == 1.0
    # Chunks before data (LIST, fact) are walked over, odd sizes padded.
    assert wav_duration(wav(32000, extra=b"LIST\x03\x00\x00\x00abc\x00")) == 2.0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"RIFF\x04\x00\x00\x00WAVE", "no fmt chunk"),
        (wav(16000)[:30], "too short"),
        (wav(16000)[:8000], "header says 16000 bytes of audio, the file holds"),
        (wav(16001), "not a whole number of 2-byte blocks"),
        (wav(0), "empty"),
        (wav(100, declared=0xFFFFFFFF), "placeholder"),
        (b"RIFF\x24\x00\x00\x00WAVE" + b"junk" + struct.pack("<I", 10**6) + bytes(20), "runs past the end"),
        (b"RIFF\x24\x00\x00\x00WAVE" + b"data" + struct.pack("<I", 4) + bytes(4), "before any fmt"),
        (wav(16000).replace(struct.pack("<I", 16000 * 1), struct.pack("<I", 8000), 1), "contradicts itself"),
    ],
)
def test_broken_wavs_are_named(body: bytes, reason: str) -> None:
    with pytest.raises(DamagedMedia, match=reason):
        wav_duration(body)


def test_mp3_duration_counts_frames_not_headers() -> None:
    assert mp3_duration(mp3(100)) == pytest.approx(100 * FRAME_SECONDS)
    # The Info frame holds no audio; an ID3v2 tag and an ID3v1 trailer are skipped.
    tagged = mp3(100, info=True, id3=id3v2(500)) + b"TAG" + bytes(125)
    assert mp3_duration(tagged) == pytest.approx(100 * FRAME_SECONDS)
    # A last frame cut short is dropped, as decoders drop it.
    assert mp3_duration(mp3(100)[:-200]) == pytest.approx(99 * FRAME_SECONDS)


def test_mp3_cut_in_half_decodes_to_half() -> None:
    whole = mp3(200, info=True)
    assert mp3_duration(whole[: len(whole) // 2]) == pytest.approx(99 * FRAME_SECONDS)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"ID3", "ID3 tag cut short"),
        (id3v2(127) + bytes((i * 37 + 11) % 251 for i in range(4000)), "no MPEG audio frames"),
        (HEADER + bytes(40), "no MPEG audio frames|holds no audio"),
        (mp3(50) + bytes(range(256)) * 20 + mp3(50), "are not MPEG audio frames"),
        (b"ID3\x04\x00\x00\x80\x00\x00\x00", "syncsafe"),
    ],
)
def test_broken_mp3s_are_named(body: bytes, reason: str) -> None:
    with pytest.raises(DamagedMedia, match=reason):
        mp3_duration(body)


def test_a_little_junk_between_frames_is_resynced_over() -> None:
    body = mp3(100) + b"\x00" * 100 + mp3(100)
    assert mp3_duration(body) == pytest.approx(200 * FRAME_SECONDS)


def test_other_formats_are_not_walked() -> None:
    assert decoded_duration(b"OggS....", "ogg") is None


def test_tolerance_is_two_seconds_or_two_percent() -> None:
    assert durations_agree(10.0, 11.9) and not durations_agree(10.0, 12.1)
    assert durations_agree(3600.0, 3671.0) and not durations_agree(3600.0, 3675.0)


def test_verified_probe_trusts_the_frames_over_the_header(tmp_path: Path) -> None:
    path = tmp_path / "a.mp3"
    path.write_bytes(mp3(400))  # 10.4 s
    lying = Probe(duration_seconds=1.0, codec="mp3")
    assert verified_probe(str(path), "mp3", lying, 10.5).duration_seconds == pytest.approx(10.449, abs=0.001)
    with pytest.raises(DamagedMedia, match=r"decodes to 10\.449 s but the provider says .* 20\.000 s"):
        verified_probe(str(path), "mp3", lying, 20.0)
    # A provider that gives no (or no sane) duration is not consulted.
    assert verified_probe(str(path), "mp3", lying, None).duration_seconds == pytest.approx(10.449, abs=0.001)
    assert verified_probe(str(path), "mp3", lying, float("nan")).duration_seconds is not None


def test_verified_probe_refuses_a_probe_error_or_no_duration(tmp_path: Path) -> None:
    path = tmp_path / "a.ogg"
    path.write_bytes(b"OggS" + bytes(100))
    with pytest.raises(DamagedMedia, match="mutagen could not"):
        verified_probe(str(path), "ogg", Probe(error="mutagen could not read the file"), None)
    with pytest.raises(DamagedMedia, match="no duration"):
        verified_probe(str(path), "ogg", Probe(codec="opus"), None)
    empty = tmp_path / "b.wav"
    empty.write_bytes(b"")
    with pytest.raises(DamagedMedia, match="empty"):
        verified_probe(str(empty), "wav", Probe(duration_seconds=1.0), None)


def test_gapless_delay_and_padding_of_a_lame_tag_are_not_counted() -> None:
    # Info frame: flags 1 (frame count), count, then a LAME tag with delay 576, padding 1000.
    tag = b"LAME3.100" + bytes(12) + ((576 << 12) | 1000).to_bytes(3, "big")
    info = b"Info" + (1).to_bytes(4, "big") + (100).to_bytes(4, "big") + tag
    head = HEADER + bytes(32) + info
    body = head + bytes(417 - len(head)) + FRAME * 100
    assert mp3_duration(body) == pytest.approx((100 * 1152 - 1576) / 44100)


def test_the_frame_table_is_built_once_when_threads_race_for_it() -> None:
    import threading

    from archiver.media import mediacheck

    mediacheck._TABLE.clear()
    tables: list[object] = []
    start = threading.Barrier(4)

    def first_mp3() -> None:
        start.wait()
        tables.append(mediacheck._frame_table())

    threads = [threading.Thread(target=first_mp3) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(mediacheck._TABLE) == 1 and all(t is mediacheck._TABLE[0] for t in tables)
    assert len(mediacheck._TABLE[0]) == 65536
    assert mp3_duration(mp3(10)) == pytest.approx(10 * FRAME_SECONDS)
