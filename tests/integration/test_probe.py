"""Probing a download as the format its first bytes told (real MP3s from ffmpeg, real WAVs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.media.fetch import sniff
from archiver.media.mediacheck import verified_probe
from archiver.media.probe import probe_file
from archiver.media.transcode import find_ffmpeg
from archiver.sim import audio


def without_id3(data: bytes) -> bytes:
    assert data[:3] == b"ID3"
    raw = data[6:10]
    return data[10 + (raw[0] << 21 | raw[1] << 14 | raw[2] << 7 | raw[3]) :]


@pytest.fixture(scope="module")
def mp3() -> bytes:
    return audio.mp3_bytes(6.0, seed=3, ffmpeg=find_ffmpeg(None))


def test_the_sniffed_format_reads_what_detection_reads(tmp_path: Path, mp3: bytes) -> None:
    for name, data in (("mp3", mp3), ("wav", audio.wav_bytes(6.0, seed=3))):
        path = tmp_path / "fetch-abc.part"  # a download's name: no extension to go by
        path.write_bytes(data)
        fmt = sniff(data[:16])
        assert fmt == name
        assert probe_file(str(path), fmt) == probe_file(str(path))
        assert probe_file(str(path), fmt).duration_seconds == pytest.approx(6.0, abs=0.1)


def test_an_mp3_without_an_id3_tag_is_probed(tmp_path: Path, mp3: bytes) -> None:
    # mutagen's detection scores MP3 by an ID3 tag or a file name ending in .mp3: a download
    # without either was "not recognised" and failed.
    data = without_id3(mp3)
    path = tmp_path / "fetch-abc.part"
    path.write_bytes(data)
    assert sniff(data[:16]) == "mp3"
    assert probe_file(str(path)).error == "mutagen does not recognise the file's format"
    probe = probe_file(str(path), "mp3")
    assert probe.error is None and probe.codec == "mp3" and probe.sample_rate == 8000
    assert verified_probe(str(path), "mp3", probe, 6.0).duration_seconds == pytest.approx(6.0, abs=0.1)


def test_bytes_the_sniffed_class_cannot_read_get_detections_answer(tmp_path: Path) -> None:
    path = tmp_path / "fetch-abc.part"
    path.write_bytes(b"ID3" + bytes(200))  # an ID3 header and nothing playable
    assert probe_file(str(path), "mp3") == probe_file(str(path))
    assert probe_file(str(path), "mp3").error


def test_small_files_are_checked_from_memory_large_ones_through_a_mmap(tmp_path: Path, mp3: bytes) -> None:
    from archiver.media import mediacheck

    small, large = tmp_path / "small.part", tmp_path / "large.part"
    small.write_bytes(mp3)
    large.write_bytes(audio.wav_bytes(300.0, seed=3))  # 4.8 MB of 8 kHz PCM
    assert small.stat().st_size <= mediacheck.READ_WHOLE < large.stat().st_size
    assert verified_probe(str(small), "mp3", probe_file(str(small), "mp3"), 6.0).duration_seconds == (
        pytest.approx(6.0, abs=0.1)
    )
    assert verified_probe(str(large), "wav", probe_file(str(large), "wav"), 300.0).duration_seconds == 300.0
    from archiver.media.probe import probe_download

    assert probe_download(str(large), "wav", 300.0) == verified_probe(
        str(large), "wav", probe_file(str(large), "wav"), 300.0
    )


def test_a_download_is_probed_from_one_read_as_from_its_file(tmp_path: Path, mp3: bytes) -> None:
    from archiver.media.mediacheck import DamagedMedia
    from archiver.media.probe import probe_download

    cases = {
        "mp3": mp3,
        "wav": audio.wav_bytes(6.0, seed=3),
        "bare-mp3": without_id3(mp3),
        "cut-wav": audio.wav_bytes(6.0, seed=3)[:30000],
        "junk-mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x13" * 5000,
    }
    for name, data in cases.items():
        path = tmp_path / f"fetch-{name}.part"
        path.write_bytes(data)
        fmt = sniff(data[:16])
        assert fmt is not None
        try:
            expected: object = verified_probe(str(path), fmt, probe_file(str(path), fmt), 6.0)
        except DamagedMedia as exc:
            expected = str(exc)
        try:
            got: object = probe_download(str(path), fmt, 6.0)
        except DamagedMedia as exc:
            got = str(exc)
        assert got == expected, name
    assert probe_download(str(tmp_path / "fetch-mp3.part"), "mp3", 6.0).duration_seconds == (
        pytest.approx(6.0, abs=0.1)
    )
    with pytest.raises(DamagedMedia):
        probe_download(str(tmp_path / "fetch-junk-mp3.part"), "mp3", 6.0)
