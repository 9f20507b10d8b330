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
