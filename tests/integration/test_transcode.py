"""Renditions with the real ffmpeg (from imageio-ffmpeg): profiles, tags, stdin, failures."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from pathlib import Path

import mutagen
import pytest

from archiver.errors import TranscodeError
from archiver.media.probe import probe_file
from archiver.media.renditions import make_rendition
from archiver.media.transcode import Transcoder, find_ffmpeg
from archiver.models import Probe
from archiver.profiles import BUILTIN
from archiver.sim import Simulator, audio

EXPECT = {  # profile -> (codec, sample rate, channels)
    "mp3-mono-32k": ("mp3", 8000, 1),
    "opus-16k": ("opus", 48000, 1),
    "flac": ("flac", 8000, 1),
    "wav-pcm16-8k": ("pcm_s16le", 8000, 1),
}
TAGS = {
    "provider": "plivo",
    "recording_id": "r-1",
    "call_id": "c-1",
    "from_number": "+14155550100",
    "to_number": "+16505550199",
    "started_at": "2024-01-02T03:04:05Z",
    "source_sha256": "ab" * 32,
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("src")
    ffmpeg = find_ffmpeg(None)
    (d / "a.wav").write_bytes(audio.wav_bytes(12.345, 3))
    (d / "a.mp3").write_bytes(audio.mp3_bytes(12.345, 3, ffmpeg))
    return {"wav": d / "a.wav", "mp3": d / "a.mp3"}


def read_tags(path: str) -> dict[str, str]:
    tags = mutagen.File(path).tags
    out = {}
    for key, value in tags.items():
        text = getattr(value, "text", value)
        out[key.replace("TXXX:", "")] = str(text[0] if isinstance(text, list) else text)
    return out


@pytest.mark.parametrize("src_format", ["wav", "mp3"])
@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_profiles(sources: dict[str, Path], tmp_path: Path, src_format: str, name: str) -> None:
    src = str(sources[src_format])
    src_probe = probe_file(src)
    made = make_rendition(
        Transcoder(find_ffmpeg(None)),
        BUILTIN[name],
        src=src,
        src_format=src_format,
        src_probe=src_probe,
        key=f"x/r-1.{name}.{BUILTIN[name].ext}",
        tags=TAGS,
        staging_dir=str(tmp_path),
    )
    codec, rate, channels = EXPECT[name]
    p = made.file.probe
    assert (p.codec, p.sample_rate, p.channels) == (codec, rate, channels)
    assert abs(p.duration_seconds - 12.345) <= 0.1  # type: ignore[operator]
    assert read_tags(made.path) == read_tags(made.path) | TAGS  # every call tag is there
    assert made.file.sha256 == hashlib.sha256(Path(made.path).read_bytes()).hexdigest()
    if name == "mp3-mono-32k":
        from mutagen.mp3 import BitrateMode

        assert p.bitrate == 32000 and mutagen.File(made.path).info.bitrate_mode == BitrateMode.CBR


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_a_wav_read_in_larger_packets_encodes_the_same_audio(
    sources: dict[str, Path], tmp_path: Path, name: str
) -> None:
    """The archiver reads a WAV original in 16 KiB packets (ffmpeg's 10 ms ones cost most of a
    WAV or FLAC encode): the rendition decodes to the very samples ffmpeg's own default makes."""
    import subprocess

    ffmpeg = find_ffmpeg(None)
    profile = BUILTIN[name]
    ours = Transcoder(ffmpeg).argv(str(sources["wav"]), "wav", profile, str(tmp_path / f"ours.{profile.ext}"))
    assert "-max_size" in ours[: ours.index("-i")]
    plain = [a for i, a in enumerate(ours) if "-max_size" not in ours[i - 1 : i + 1]]
    plain[-1] = str(tmp_path / f"plain.{profile.ext}")

    def samples(path: str) -> str:
        out = subprocess.run(
            [ffmpeg, "-v", "error", "-i", path, "-f", "md5", "-"], capture_output=True, check=True
        )
        return out.stdout.decode()

    for argv in (ours, plain):
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    assert samples(ours[-1]) == samples(plain[-1]) and samples(ours[-1]).startswith("MD5=")
    if profile.muxer in ("wav", "mp3"):
        assert Path(ours[-1]).read_bytes() == Path(plain[-1]).read_bytes()


def test_a_rendition_of_the_wrong_length_fails(sources: dict[str, Path], tmp_path: Path) -> None:
    from archiver.profiles import Profile

    cut = Profile("cut", "flac", "flac", "flac", options=("-t", "5"))  # drops most of the audio
    with pytest.raises(TranscodeError, match=r"lasts 5\.000 s, the original 12\.345 s"):
        make_rendition(
            Transcoder(find_ffmpeg(None)),
            cut,
            src=str(sources["wav"]),
            src_format="wav",
            src_probe=probe_file(str(sources["wav"])),
            key="k",
            tags={},
            staging_dir=str(tmp_path),
        )
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_leaves_nothing(sources: dict[str, Path], tmp_path: Path) -> None:
    broken = Transcoder(str(tmp_path / "no-ffmpeg-here"))
    with pytest.raises(TranscodeError, match="ffmpeg not found"):
        make_rendition(
            broken,
            BUILTIN["flac"],
            src=str(sources["mp3"]),
            src_format="mp3",
            src_probe=Probe(duration_seconds=12.3),
            key="k",
            tags={},
            staging_dir=str(tmp_path),
        )
    assert list(tmp_path.iterdir()) == []


def test_ffmpeg_is_the_binary_imageio_ffmpeg_would_pick(monkeypatch) -> None:
    """Taken from its path, nothing run: the binary imageio-ffmpeg's own lookup answers (which
    runs it first). ARCHIVER_FFMPEG comes first, then imageio-ffmpeg's own setting."""
    import imageio_ffmpeg

    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    assert find_ffmpeg(None) == imageio_ffmpeg.get_ffmpeg_exe()
    assert find_ffmpeg("/opt/ffmpeg") == "/opt/ffmpeg"
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", "/opt/imageio-ffmpeg")
    assert find_ffmpeg(None) == "/opt/imageio-ffmpeg"
    assert find_ffmpeg("/opt/ffmpeg") == "/opt/ffmpeg"


def test_an_ffmpeg_that_cannot_run_fails_the_first_encode_by_its_path(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    """An executable file that is no program (a binary for another machine, a cut download)
    is found like a good one; its first encode fails, naming it, and leaves nothing."""
    fake = tmp_path / "ffmpeg"
    fake.write_bytes(b"\x7fELF" + b"\x00" * 60)
    fake.chmod(0o755)
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(TranscodeError, match=re.escape(f"cannot run ffmpeg at '{fake}'")):
        make_rendition(
            Transcoder(find_ffmpeg(str(fake))),
            BUILTIN["flac"],
            src=str(sources["wav"]),
            src_format="wav",
            src_probe=probe_file(str(sources["wav"])),
            key="k",
            tags={},
            staging_dir=str(staging),
        )
    assert list(staging.iterdir()) == []


def test_backfill_with_two_renditions(backfill, cli, tmp_path: Path, monkeypatch, use_sim) -> None:
    with Simulator(recordings=6, seed=21) as sim:
        use_sim(sim)
        dest = tmp_path / "a"
        result = backfill(
            "plivo",
            str(dest),
            "--transcode",
            "mp3-mono-32k",
            "--transcode",
            "opus-16k",
        )
        assert result.exit_code == 0, result.output
        for rec in sim.plivo:
            side = next(dest.rglob(f"{rec.id}.json"))
            doc = json.loads(side.read_text())
            roles = {(f["role"], f["profile"]) for f in doc["files"]}
            assert roles == {("original", None), ("rendition", "mp3-mono-32k"), ("rendition", "opus-16k")}
            original = doc["files"][0]
            assert (dest / original["key"]).read_bytes() == sim.media_bytes(rec)
            for f in doc["files"][1:]:
                path = dest / f["key"]
                assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"]
                assert abs(f["duration_seconds"] - original["duration_seconds"]) <= 0.1
                tags = read_tags(str(path))
                assert tags["recording_id"] == rec.id and tags["source_sha256"] == original["sha256"]


def test_no_keep_original_stores_renditions_only(backfill, cli, tmp_path: Path, monkeypatch, use_sim) -> None:
    with Simulator(recordings=3, seed=22) as sim:
        use_sim(sim)
        dest = tmp_path / "a"
        result = backfill(
            "catapult",
            str(dest),
            "--transcode",
            "flac",
            "--no-keep-original",
        )
        assert result.exit_code == 0, result.output
        assert not list(dest.rglob("*.wav")) and len(list(dest.rglob("*.flac.flac"))) == 3
        for rec in sim.catapult:
            doc = json.loads(next(dest.rglob(f"{rec.id}.json")).read_text())
            original = doc["files"][0]
            assert original["key"] is None and original["role"] == "original"
            assert original["sha256"] == hashlib.sha256(sim.media_bytes(rec)).hexdigest()
            assert original["bytes"] == len(sim.media_bytes(rec)) and original["duration_seconds"] > 0


def test_rendition_failure_keeps_the_original_and_is_reported(
    backfill, cli, tmp_path: Path, monkeypatch, use_sim
) -> None:
    with Simulator(recordings=3, seed=23) as sim:
        use_sim(sim)
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            '[profiles.bad]\nformat = "mp3"\ncodec = "libmp3lame"\noptions = ["-b:a", "nonsense"]\n'
        )
        scratch = tmp_path / "tmp"  # temp files of a failed encode would land here: none may be left
        scratch.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        dest = tmp_path / "a"
        report = tmp_path / "r.json"
        result = backfill(
            "plivo",
            str(dest),
            "--config",
            str(cfg),
            "--transcode",
            "bad",
            "--transcode",
            "flac",
            "--no-keep-original",
            "--report",
            str(report),
        )
        assert result.exit_code == 1
        assert "archived=3" in result.output
        failures = json.loads(report.read_text())["failures"]
        assert {f["stage"] for f in failures} == {"transcode:bad"} and len(failures) == 3
        assert all("ffmpeg" in f["error"] and "nonsense" in f["error"] for f in failures), failures
        # The original is kept after all (a rendition failed), the good rendition is stored.
        assert len(list(dest.rglob("*.flac.flac"))) == 3
        assert sorted(p.name for p in dest.rglob("*.*") if p.suffix in (".mp3", ".wav")) != []
        assert not [p for p in dest.rglob(".*")]
        assert list(scratch.iterdir()) == []


def test_missing_ffmpeg_fails_renditions_not_recordings(
    backfill, cli, tmp_path: Path, monkeypatch, use_sim
) -> None:
    with Simulator(recordings=2, seed=24) as sim:
        use_sim(sim)
        monkeypatch.setenv("ARCHIVER_FFMPEG", str(tmp_path / "missing-ffmpeg"))
        result = backfill(
            "plivo",
            str(tmp_path / "a"),
            "--transcode",
            "mp3-mono-32k",
        )
        assert result.exit_code == 1 and "archived=2" in result.output
        assert "ffmpeg not found" in result.output


@pytest.mark.parametrize("where", ["local", "s3"])
def test_transcode_command_adds_flac_without_the_provider(
    backfill, cli, tmp_path: Path, monkeypatch, request, where, use_sim
) -> None:
    dest = str(tmp_path / "a")
    if where == "s3":
        s3 = request.getfixturevalue("s3")
        dest = f"s3://{s3.bucket}/arch"
    with Simulator(recordings=4, seed=25) as sim:
        use_sim(sim)
        assert backfill("plivo", dest).exit_code == 0
        stats = dict(sim.stats)
    # The simulator is gone: any provider request would fail.
    first = cli("transcode", "--dest", dest, "--profile", "flac")
    assert first.exit_code == 0, first.output
    assert "listed=4 encoded=4" in first.output and "archived=" not in first.output
    again = cli("transcode", "--dest", dest, "--profile", "flac")
    assert "encoded=0 skipped=4" in again.output
    assert sim.stats == stats
    from archiver.sidecars import Selection, archived
    from archiver.storage import open_storage

    storage = open_storage(dest)
    for item in archived(storage, Selection()):
        flac = [f for f in item.doc["files"] if f["profile"] == "flac"]
        assert len(flac) == 1 and flac[0]["codec"] == "flac"
        with storage.open_read(flac[0]["key"]) as fh:  # type: ignore[attr-defined]
            assert hashlib.sha256(fh.read()).hexdigest() == flac[0]["sha256"]


def test_transcode_command_reports_undecodable_and_altered_originals(
    backfill, cli, tmp_path: Path, monkeypatch, use_sim
) -> None:
    with Simulator(recordings=3, seed=26) as sim:
        use_sim(sim)
        dest = tmp_path / "a"
        backfill("plivo", str(dest))
    sides = sorted(dest.rglob("*.json"))
    # 1: an original that is not decodable, but matches its sidecar (garbage archived as mp3)
    doc = json.loads(sides[0].read_text())
    junk = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x13" * 50000  # as large as a real one
    (dest / doc["files"][0]["key"]).write_bytes(junk)
    doc["files"][0]["sha256"] = hashlib.sha256(junk).hexdigest()
    sides[0].write_text(json.dumps(doc))
    # 2: an original altered after archiving
    doc2 = json.loads(sides[1].read_text())
    with open(dest / doc2["files"][0]["key"], "ab") as fh:
        fh.write(b"tampered")
    report = tmp_path / "r.json"
    result = cli("transcode", "--dest", str(dest), "--profile", "wav-pcm16-8k", "--report", str(report))
    assert result.exit_code == 1 and "encoded=1" in result.output and "failed=2" in result.output
    failures = {f["recording_id"]: f for f in json.loads(report.read_text())["failures"]}
    assert failures[doc["recording"]["recording_id"]]["stage"] == "transcode"
    assert "ffmpeg" in failures[doc["recording"]["recording_id"]]["error"]
    assert "does not match" in failures[doc2["recording"]["recording_id"]]["error"]
    assert not list(dest.rglob("*.wav-pcm16-8k.wav"))[1:]  # only the good one got a rendition
    assert not [p for p in dest.rglob(".*") if p.is_file()]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_an_original_altered_in_place_gets_no_rendition(
    backfill, cli, tmp_path: Path, request, where, use_sim
) -> None:
    """An original altered after archiving with its size kept (a few samples changed: it
    still decodes) gets no rendition. A local one is hashed beside its encode, so ffmpeg does
    make one, and it is dropped: nothing is written, the sidecar is as it was, the failure is
    the recording's and names its original. The other recording gets its rendition."""
    from archiver.sidecars import Selection, archived
    from archiver.storage import open_storage

    dest = str(tmp_path / "a")
    if where == "s3":
        dest = f"s3://{request.getfixturevalue('s3').bucket}/altered"
    with Simulator(recordings=2, seed=28) as sim:
        use_sim(sim)
        assert backfill("catapult", dest).exit_code == 0
    storage = open_storage(dest)
    try:
        victim, other = sorted(archived(storage, Selection()), key=lambda item: item.key)
        original = victim.doc["files"][0]
        assert original["role"] == "original" and original["format"] == "wav"
        with storage.open_read(original["key"]) as fh:  # type: ignore[attr-defined]
            body = bytearray(fh.read())
        middle = len(body) // 2
        body[middle : middle + 64] = bytes(b ^ 0x55 for b in body[middle : middle + 64])
        if where == "local":
            with open(Path(dest) / original["key"], "r+b") as fh:  # in place: same file, same size
                fh.write(body)
        else:
            storage.put_bytes(original["key"], bytes(body), content_type="audio/wav")
        before = set(storage.list_keys())
        with storage.open_read(victim.key) as fh:  # type: ignore[attr-defined]
            sidecar = fh.read()
    finally:
        storage.close()
    report = tmp_path / "r.json"
    result = cli("transcode", "--dest", dest, "--profile", "flac", "--report", str(report))
    assert result.exit_code == 1 and "encoded=1" in result.output and "failed=1" in result.output
    (failure,) = json.loads(report.read_text())["failures"]
    assert failure["recording_id"] == victim.recording_id and failure["stage"] == "verify"
    assert failure["error"] == f"stored original {original['key']} does not match its sidecar's SHA-256"
    assert victim.recording_id in failure["error"]
    storage = open_storage(dest)
    try:
        added = set(storage.list_keys()) - before
        assert added == {other.key[: -len(".json")] + ".flac.flac"}
        with storage.open_read(victim.key) as fh:  # type: ignore[attr-defined]
            assert fh.read() == sidecar
    finally:
        storage.close()
    if where == "local":
        assert not [p for p in Path(dest).rglob(".*") if p.is_file()]  # no staging left over


def test_unknown_or_bad_profiles_exit_2(backfill, cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PLIVO_AUTH_ID", "MA0000000000000000")
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", "x")
    r = backfill("plivo", str(tmp_path), "--transcode", "mp4-hd")
    assert r.exit_code == 2 and "unknown transcode profile(s) mp4-hd" in r.output and "opus-16k" in r.output
    cfg = tmp_path / "c.toml"
    cfg.write_text('[profiles.x]\nformat = "aac"\ncodec = "aac"\n')
    r = cli("--config", str(cfg), "transcode", "--dest", str(tmp_path), "--profile", "x")
    assert r.exit_code == 2 and "[profiles.x]: format must be one of" in r.output


def test_a_header_that_lies_about_its_rate_costs_no_encode(
    backfill, cli, tmp_path: Path, monkeypatch, use_sim
) -> None:
    """A WAV whose header says 2 Hz makes 20 s of audio "last" 20 hours; believed, one
    MP3 encode of it took 34 s of CPU and wrote 200 MB. Fetched, the provider's duration
    gives it away (the probe stage); archived already (or from a provider that states no
    duration), the encoder refuses it before ffmpeg runs. Either way the rest go on."""
    with Simulator(recordings=4, seed=23, faults="liar") as sim:
        use_sim(sim)
        dest = tmp_path / "a"
        report = tmp_path / "r.json"
        result = backfill("plivo", str(dest), "--transcode", "mp3-mono-32k", "--report", str(report))
        wavs = [r for r in sim.plivo if r.fmt == "wav"]
        assert wavs and len(wavs) < 4  # both kinds in this simulator
        failures = json.loads(report.read_text())["failures"]
        assert {(f["recording_id"], f["stage"]) for f in failures} == {(r.id, "probe") for r in wavs}
        assert all("provider says the recording lasts" in f["error"] for f in failures)
        assert result.exit_code == 1 and f"archived={4 - len(wavs)}" in result.output
        assert not list(dest.rglob(f"{wavs[0].id}*"))  # nothing of it stored
    # An archived original rewritten to say 2 Hz (its sidecar's hash made to match).
    with Simulator(recordings=3, seed=26) as sim:
        use_sim(sim)
        dest = tmp_path / "b"
        backfill("plivo", str(dest))
    sides = sorted(dest.rglob("*.json"))
    doc = json.loads(sides[0].read_text())
    original = dest / doc["files"][0]["key"]
    pcm = audio.wav_bytes(20.0, 5)
    liar = pcm[:24] + (2).to_bytes(4, "little") + (4).to_bytes(4, "little") + pcm[32:]
    original.write_bytes(liar)
    told = probe_file(str(original))  # what archiving it would have recorded
    assert (told.sample_rate, told.duration_seconds) == (2, 80_000.0)
    doc["files"][0].update(
        sha256=hashlib.sha256(liar).hexdigest(),
        bytes=len(liar),
        format="wav",
        codec=told.codec,
        sample_rate=told.sample_rate,
        duration_seconds=told.duration_seconds,
    )
    sides[0].write_text(json.dumps(doc))
    report = tmp_path / "t.json"
    result = cli("transcode", "--dest", str(dest), "--profile", "mp3-mono-32k", "--report", str(report))
    assert result.exit_code == 1 and "encoded=2" in result.output and "failed=1" in result.output
    (failure,) = json.loads(report.read_text())["failures"]
    assert failure["recording_id"] == doc["recording"]["recording_id"] and "says 2 Hz" in failure["error"]
    assert not list(dest.rglob(f"{doc['recording']['recording_id']}.mp3-mono-32k*"))
    assert not [p for p in dest.rglob(".*") if p.is_file()]


@pytest.fixture(scope="module")
def long_liar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 MB of PCM under a 2 Hz header: an encode of it into MP3 needs minutes of CPU and
    writes a gigabyte (what a header check could not see would cost that)."""
    pcm = audio.wav_bytes(60.0, 9)
    path = tmp_path_factory.mktemp("liar") / "liar.wav"
    path.write_bytes(pcm[:24] + (2).to_bytes(4, "little") + (4).to_bytes(4, "little") + pcm[32:])
    return path


def test_ffmpeg_is_stopped_at_its_cpu_budget_and_leaves_nothing(long_liar: Path, tmp_path: Path) -> None:
    from archiver.media.transcode import Limits

    out = tmp_path / "o.mp3"
    with pytest.raises(TranscodeError, match="used up its 1 s of CPU"):
        Transcoder(find_ffmpeg(None)).encode(
            str(long_liar), "wav", BUILTIN["mp3-mono-32k"], str(out), limits=Limits(1, 10**12)
        )
    assert list(tmp_path.iterdir()) == []


def test_ffmpeg_is_stopped_at_its_output_cap_and_leaves_nothing(long_liar: Path, tmp_path: Path) -> None:
    from archiver.media.transcode import Limits

    out = tmp_path / "o.mp3"
    with pytest.raises(TranscodeError, match="output reached its cap of 2000000 bytes"):
        Transcoder(find_ffmpeg(None)).encode(
            str(long_liar), "wav", BUILTIN["mp3-mono-32k"], str(out), limits=Limits(3600, 2_000_000)
        )
    assert list(tmp_path.iterdir()) == []


def test_transcode_reads_a_local_original_where_it_is(backfill, tmp_path: Path, use_sim) -> None:
    """A local archive's original goes to ffmpeg where it is, hashed (beside the encode), not
    copied into staging (a 1 h WAV is 57.6 MB); one that is a symlink out of the archive is
    refused."""
    from archiver.errors import UnsafeKeyError
    from archiver.media.retranscode import readable_original
    from archiver.storage.base import LocalFiles
    from archiver.storage.local import LocalStorage

    dest = tmp_path / "a"
    with Simulator(recordings=1, seed=27) as sim:
        use_sim(sim)
        assert backfill("plivo", str(dest)).exit_code == 0
    original = json.loads(next(dest.rglob("*.json")).read_text())["files"][0]
    storage = LocalStorage(dest)
    assert isinstance(storage, LocalFiles)
    try:
        staging = storage.staging_dir()
        src = readable_original(storage, original["key"], original["format"], staging)
        assert (src.path, src.sha256(), src.size, src.copy) == (
            str(dest / original["key"]),
            original["sha256"],
            original["bytes"],
            None,
        )
        assert list(Path(staging).iterdir()) == []
        outside = tmp_path / "outside.bin"
        outside.write_bytes((dest / original["key"]).read_bytes())
        (dest / original["key"]).unlink()
        (dest / original["key"]).symlink_to(outside)
        with pytest.raises(UnsafeKeyError):
            readable_original(storage, original["key"], original["format"], staging)
    finally:
        storage.close()
