"""Which engine a rendition takes: pydub in memory, or ffmpeg streaming (issue 8, 3.9)."""

from __future__ import annotations

from archiver.media.transcode import Transcoder, decoded_bound

MB = 1024 * 1024


def test_the_size_bound_uses_each_codecs_largest_expansion() -> None:
    # 8 kbit/s MPEG-2 Layer III at 24 kHz stereo decodes to 768 kbit/s of 16-bit PCM.
    assert decoded_bound(1000, "mp3") == 96_000
    assert decoded_bound(1000, "wav", "pcm_s16le") == 1000
    assert decoded_bound(1000, "wav", "pcm_s8le") == 2000
    assert decoded_bound(1000, "wav", "pcm") == 10_000  # GSM 6.10 and other compressed WAV
    assert decoded_bound(1000, "ogg") == 256_000
    assert decoded_bound(1, "aiff") == float("inf")


def test_a_header_claiming_one_second_cannot_keep_a_long_mp3_in_memory() -> None:
    t = Transcoder("ffmpeg", memory_cap_mb=256)
    # 10 min at 32 kbit/s is 2.4 MB: its Xing frame claims 1 s (16 kB of PCM).
    assert t.engine_for(1.0, 8000, 1) == "pydub"
    assert t.engine_for(1.0, 8000, 1, file_bytes=2_400_000, src_format="mp3", codec="mp3") == "stream"
    # A short MP3 stays in memory: 100 kB can decode to at most 9.6 MB.
    assert t.engine_for(12.0, 8000, 1, file_bytes=100_000, src_format="mp3") == "pydub"
    # An hour of 8 kHz 16-bit WAV (57.6 MB) is what it says: pydub, as before.
    assert t.engine_for(3600, 8000, 1, file_bytes=57_600_044, src_format="wav", codec="pcm_s16le") == "pydub"
    # The probe's duration still counts when it is the larger (3 h of PCM in a small file).
    assert t.engine_for(3 * 3600, 8000, 1, file_bytes=1000, src_format="wav", codec="pcm_s16le") == "stream"
    assert (
        Transcoder("ffmpeg", memory_cap_mb=1).engine_for(1, 8000, 1, file_bytes=MB, src_format="flac")
        == "stream"
    )


def test_ffmpeg_reason_keeps_the_cause_ffmpeg_7_prints_first() -> None:
    from archiver.media.transcode import _tail

    stderr = "\n".join(
        [
            "Stream mapping:",
            "  Stream #0:0 -> #0:0 (pcm_s16le (native) -> mp3 (libmp3lame))",
            '[libmp3lame @ 0x1] Unable to parse option value "nonsense"',
            "[libmp3lame @ 0x1] Error setting option b to value nonsense.",
            *[
                f"[af#0:0 @ 0x2] Terminating thread with return code -22 (Invalid argument) {i}"
                for i in range(9)
            ],
            "size=       0KiB time=N/A bitrate=N/A speed=N/A",
            "Conversion failed!",
        ]
    )
    reason = _tail(stderr)
    assert reason.startswith('[libmp3lame @ 0x1] Unable to parse option value "nonsense"')
    assert "Error setting option b" in reason and reason.endswith("Conversion failed!")
    assert _tail("a\nb\nc\nd\ne") == "b | c | d | e"  # no line states a cause: the last four
