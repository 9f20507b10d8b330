"""The encoder of transcode profiles (:mod:`archiver.profiles`): pydub on ffmpeg, or two
piped ffmpeg processes (decode | encode) for recordings too long to decode in memory. No shell, stdin closed,
stderr kept for the error, partial output removed.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Mapping

from archiver.errors import TranscodeError
from archiver.profiles import Profile

MB = 1024 * 1024


DECODERS = {"mp3": "mp3", "ogg": "libopus", "opus": "libopus", "flac": "flac"}


def find_ffmpeg(configured: str | None) -> str:
    """``ARCHIVER_FFMPEG``, else the binary imageio-ffmpeg ships, else ``ffmpeg`` on PATH."""
    if configured:
        return configured
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg") or "ffmpeg"


def decoded_bytes(duration: float | None, sample_rate: int | None, channels: int | None) -> int:
    """Size of the decoded 16-bit PCM (what pydub holds in memory)."""
    return int((duration or 0) * (sample_rate or 48000) * (channels or 2) * 2)


# The most decoded 16-bit PCM one byte of a file can become, by format: a bound a lying header
# (an Info/Xing frame count, a STREAMINFO total) cannot shrink, since it rests on the size.
MAX_EXPANSION: Mapping[str, float] = {
    # The lowest MP3 bitrate, 8 kbit/s (MPEG-2 Layer III), at its highest sample rate, 24 kHz
    # stereo, decodes to 24000 x 2 ch x 16 bit = 768 kbit/s: 96x. (At 8 kHz mono it is 16x.)
    "mp3": 96,
    # Opus at its 6 kbit/s floor decodes at 48 kHz stereo: 1536 / 6 = 256x (Vorbis is less).
    "ogg": 256,
    "opus": 256,
    # A constant FLAC block codes up to 65535 samples in a few bytes: no useful bound.
    "flac": 16384,
}
# WAV by codec: PCM holds what it decodes to (8-bit widens to 16); compressed WAV (ADPCM, GSM
# 6.10 at ~10x) is bounded by GSM's ratio.
WAV_EXPANSION: Mapping[str, float] = {"pcm_s16le": 1, "pcm_s24le": 1, "pcm_s32le": 1, "pcm_s8le": 2}
WAV_COMPRESSED_EXPANSION = 10


def decoded_bound(file_bytes: int, src_format: str, codec: str | None = None) -> float:
    """The most bytes of 16-bit PCM a ``file_bytes`` file of ``src_format`` can decode to
    (infinite for a format we have no bound for)."""
    if src_format == "wav":
        return file_bytes * WAV_EXPANSION.get(codec or "", WAV_COMPRESSED_EXPANSION)
    return file_bytes * MAX_EXPANSION.get(src_format, math.inf)


class Transcoder:
    """Encodes files with a profile. Thread-safe: every call runs its own ffmpeg."""

    def __init__(self, ffmpeg: str, *, memory_cap_mb: int = 256) -> None:
        self.ffmpeg = ffmpeg
        self.memory_cap = memory_cap_mb * MB

    def engine_for(
        self,
        duration: float | None,
        sample_rate: int | None,
        channels: int | None,
        *,
        file_bytes: int | None = None,
        src_format: str | None = None,
        codec: str | None = None,
    ) -> str:
        """``pydub`` (in memory) or ``stream`` (one ffmpeg pipe): pydub holds about twice the
        decoded PCM, so past the memory cap the stream engine is taken. The decoded size is
        the larger of what the probe's duration says and the bound from the file's size
        (:func:`decoded_bound`), since the duration comes from a header that may lie."""
        size = float(decoded_bytes(duration, sample_rate, channels))
        if file_bytes is not None and src_format is not None:
            size = max(size, decoded_bound(file_bytes, src_format, codec))
        return "stream" if 2 * size > self.memory_cap else "pydub"

    def encode(self, src: str, src_format: str, profile: Profile, out: str, *, engine: str) -> None:
        """Encode ``src`` into ``out``; on failure nothing is left at ``out``."""
        try:
            if engine == "pydub":
                self._pydub(src, src_format, profile, out)
            else:
                self._stream(src, src_format, profile, out)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)
            raise

    def _pydub(self, src: str, src_format: str, profile: Profile, out: str) -> None:
        with warnings.catch_warnings():
            # pydub warns on import when ffmpeg is not on PATH (we pass its path) and uses the
            # deprecated audioop module on Python 3.11-3.12.
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            from pydub import AudioSegment
            from pydub.exceptions import CouldntDecodeError, CouldntEncodeError
        if shutil.which(self.ffmpeg) is None:
            raise TranscodeError(f"{profile.name}: ffmpeg not found at {self.ffmpeg!r}")
        AudioSegment.converter = self.ffmpeg
        try:
            # Our own file object: pydub leaves the files it opens for WAV unclosed. The decoder
            # is named, so pydub never asks ffprobe (imageio-ffmpeg ships none).
            with open(src, "rb") as fh:
                segment = AudioSegment.from_file(fh, format=src_format, codec=DECODERS.get(src_format))
            with open(out, "wb") as fh:
                segment.export(
                    fh,
                    format=profile.muxer,
                    codec=profile.codec,
                    bitrate=profile.bitrate,
                    parameters=profile.output_args(),
                )
        except (CouldntDecodeError, CouldntEncodeError) as exc:
            _remove_pydub_temp_files(exc)
            raise TranscodeError(f"{profile.name}: ffmpeg failed: {_tail(str(exc))}") from None
        except OSError as exc:
            _remove_pydub_temp_files(exc)
            raise TranscodeError(f"{profile.name}: {exc.strerror or exc}") from None

    def stream_argvs(
        self, src: str, src_format: str, profile: Profile, out: str
    ) -> tuple[list[str], list[str]]:
        """The streaming engine: one ffmpeg decodes to 16-bit WAV on a pipe, a second encodes
        it, as pydub decodes to WAV and then encodes; so both engines give the same result,
        and neither holds more than a pipe's worth of audio."""
        base = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"]
        decode = [*base, "-f", src_format]
        if src_format in DECODERS:  # the decoder pydub is told to use
            decode += ["-acodec", DECODERS[src_format]]
        decode += ["-i", src, "-vn", "-acodec", "pcm_s16le", "-f", "wav", "pipe:1"]
        encode = [*base, "-y", "-f", "wav", "-i", "pipe:0", "-acodec", profile.codec]
        if profile.bitrate:
            encode += ["-b:a", profile.bitrate]
        return decode, encode + profile.output_args() + ["-f", profile.muxer, out]

    def _stream(self, src: str, src_format: str, profile: Profile, out: str) -> None:
        decode, encode = self.stream_argvs(src, src_format, profile, out)
        with tempfile.TemporaryFile() as err1, tempfile.TemporaryFile() as err2:
            try:
                dec = subprocess.Popen(decode, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err1)
            except OSError as exc:
                raise TranscodeError(
                    f"{profile.name}: cannot run ffmpeg at {self.ffmpeg!r}: {exc.strerror or exc}"
                ) from None
            try:
                enc = subprocess.Popen(encode, stdin=dec.stdout, stdout=subprocess.DEVNULL, stderr=err2)
            finally:
                assert dec.stdout is not None
                dec.stdout.close()  # the encoder owns the pipe now; the decoder sees EPIPE if it dies
            enc_rc = enc.wait()
            dec_rc = dec.wait()
            for rc, err, what in ((dec_rc, err1, "decoding"), (enc_rc, err2, "encoding")):
                if rc != 0:
                    err.seek(0)
                    message = _tail(err.read().decode(errors="replace"))
                    raise TranscodeError(f"{profile.name}: ffmpeg {what} exited {rc}: {message}")


def _remove_pydub_temp_files(exc: BaseException) -> None:
    """pydub's export raises before closing and deleting its two temp files (it makes them
    with delete=False); find them in its frame and remove them."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "export" and "pydub" in frame.f_code.co_filename:
            for name in ("data", "output"):
                handle = frame.f_locals.get(name)
                if handle is not None and hasattr(handle, "name"):
                    with contextlib.suppress(OSError):
                        handle.close()
                        os.unlink(handle.name)
        tb = tb.tb_next


# A line of ffmpeg's stderr that states a cause (not progress or stream info).
CAUSE = re.compile(r"error|unable|invalid|unknown|no such|not found|could not|cannot", re.IGNORECASE)


def _tail(text: str, limit: int = 400) -> str:
    """ffmpeg's reason, on one line: its first two lines that state a cause, then its last
    line (ffmpeg 7 names the cause first and then a dozen lines of what followed from it, so
    the last lines alone lose it); the last four lines when none does."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    causes = [ln for ln in lines if CAUSE.search(ln)][:2]
    picked = list(dict.fromkeys(causes + lines[-1:])) if causes else lines[-4:]
    joined = " | ".join(picked)
    return joined[-limit:]
