"""The one ffmpeg command of a rendition (archiver.media.transcode.Transcoder.argv)."""

from __future__ import annotations

from archiver.media.transcode import Transcoder
from archiver.profiles import BUILTIN


def test_one_process_decodes_encodes_and_tags() -> None:
    argv = Transcoder("ff").argv("in.mp3", "mp3", BUILTIN["mp3-mono-32k"], "out.mp3", {"call_id": "c=1 -y"})
    assert argv[0] == "ff" and argv.count("-i") == 1 and "pipe:1" not in argv
    assert argv[argv.index("-i") - 2 : argv.index("-i") + 2] == ["-acodec", "mp3", "-i", "in.mp3"]
    # The source's own tags are dropped; ours go in as one argv item each (no shell, no split).
    assert argv[argv.index("-map_metadata") + 1] == "-1"
    assert argv[argv.index("-metadata") + 1] == "call_id=c=1 -y"
    assert argv[-4:] == ["-f", "mp3", "-y", "out.mp3"]
    assert argv[argv.index("-b:a") : argv.index("-b:a") + 2] == ["-b:a", "32k"]


def test_wav_renditions_are_tagged_afterwards() -> None:
    argv = Transcoder("ff").argv("a.wav", "wav", BUILTIN["wav-pcm16-8k"], "o.wav", {"provider": "plivo"})
    assert "-metadata" not in argv  # ffmpeg's WAV drops such tags: mutagen writes an ID3 chunk
    assert argv[argv.index("-ar") : argv.index("-ar") + 4] == ["-ar", "8000", "-ac", "1"]
    assert "-max_size" not in argv  # a.wav cannot be read: ffmpeg's default, and its own error


def _wav(tag: int, channels: int, bits: int, align: int, subformat: int | None = None) -> bytes:
    import struct

    fmt = struct.pack("<HHIIHH", tag, channels, 8000, 8000 * align, align, bits)
    if subformat is not None:  # WAVE_FORMAT_EXTENSIBLE: cbSize, valid bits, mask, GUID
        fmt += struct.pack("<HHI", 22, bits, 4) + struct.pack("<H", subformat) + bytes(14)
    body = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 4) + bytes(4)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def test_only_a_wav_of_whole_samples_is_read_in_larger_packets(tmp_path) -> None:
    """16 KiB packets (an input option, so before -i) for PCM, float and G.711; a block codec
    (ADPCM) or a header whose block size lies keeps ffmpeg's default cut; an MP3 has none."""
    from archiver.media.mediacheck import wav_sample_coded

    kinds = {
        "pcm16": (_wav(1, 1, 16, 2), True),
        "pcm24-stereo": (_wav(1, 2, 24, 6), True),
        "float": (_wav(3, 1, 32, 4), True),
        "alaw": (_wav(6, 1, 8, 1), True),
        "mulaw": (_wav(7, 1, 8, 1), True),
        "extensible-pcm": (_wav(0xFFFE, 2, 16, 4, subformat=1), True),
        "ima-adpcm": (_wav(0x11, 1, 4, 256), False),
        "extensible-adpcm": (_wav(0xFFFE, 1, 4, 256, subformat=0x11), False),
        "block-lies": (_wav(1, 2, 16, 3), False),
        "not-riff": (b"ID3" + bytes(60), False),
        "cut-short": (_wav(1, 1, 16, 2)[:30], False),
    }
    for name, (head, expected) in kinds.items():
        assert wav_sample_coded(head) is expected, name
        path = tmp_path / f"{name}.wav"
        path.write_bytes(head)
        argv = Transcoder("ff").argv(str(path), "wav", BUILTIN["flac"], "o.flac")
        packets = argv[argv.index("-i") - 4 : argv.index("-i")] == ["-f", "wav", "-max_size", "16384"]
        assert packets is expected, name
    assert "-max_size" not in Transcoder("ff").argv("a.mp3", "mp3", BUILTIN["flac"], "o.flac")
    untagged = Transcoder("ff").argv("a.wav", "wav", BUILTIN["flac"], "o.flac")
    assert "-metadata" not in untagged


def test_an_ffmpeg_stopped_by_ctrl_c_is_a_transient_error_not_a_failed_profile(tmp_path) -> None:
    """The terminal's Ctrl-C reaches ffmpeg too: that encode did not fail, the run stopped;
    the recording must be tried again whole (a sidecar without the rendition would hide it)."""
    import pytest

    from archiver.errors import TranscodeError, TransientError
    from archiver.media.transcode import Transcoder

    stopped = tmp_path / "ffmpeg-stopped"
    stopped.write_text("#!/bin/sh\nkill -INT $$\n")
    stopped.chmod(0o755)
    with pytest.raises(TransientError, match="stopped by SIGINT"):
        Transcoder(str(stopped))._run([str(stopped)], "flac")
    broken = tmp_path / "ffmpeg-broken"
    broken.write_text("#!/bin/sh\necho 'Invalid data found when processing input' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(TranscodeError, match="exited 1: .*Invalid data"):
        Transcoder(str(broken))._run([str(broken)], "flac")


def test_limits_go_to_ffmpeg_as_its_own_cpu_and_size_caps() -> None:
    from archiver.media.transcode import Limits

    argv = Transcoder("ff").argv("a.wav", "wav", BUILTIN["flac"], "o.flac", limits=Limits(75, 123456))
    assert argv[argv.index("-timelimit") + 1] == "75" and argv.index("-timelimit") < argv.index("-i")
    assert argv[argv.index("-fs") + 1] == "123456" and argv.index("-fs") > argv.index("-i")  # output option
    assert "-timelimit" not in Transcoder("ff").argv("a.wav", "wav", BUILTIN["flac"], "o.flac")
    hour = Limits.for_original(size=57_600_000, duration=3600.0)  # an hour of 8 kHz 16-bit
    assert hour.cpu_seconds == 60 + 900 and hour.max_bytes == 16 * 2**20 + 64 * 57_600_000


def test_an_original_no_call_can_be_is_refused_by_name() -> None:
    import pytest

    from archiver.errors import TranscodeError
    from archiver.media.transcode import check_original

    check_original("flac", 57_600_000, 3600.0, 8000)  # an hour of 8 kHz PCM
    check_original("flac", 14_400_000, 3600.0, 8000)  # ... of 32 kbit/s MP3
    check_original("flac", 1_000, None, None)  # nothing claimed: nothing to doubt
    with pytest.raises(TranscodeError, match="flac: the original's header says 2 Hz"):
        check_original("flac", 200_000, 50_000.0, 2)
    with pytest.raises(TranscodeError, match=r"claims 50000 s in 200000 bytes \(32 bit/s\)"):
        check_original("flac", 200_000, 50_000.0, 8000)  # a duration field that lies
    with pytest.raises(TranscodeError, match="says 1000000 Hz"):
        check_original("flac", 10**9, 60.0, 1_000_000)
