"""The encoder of transcode profiles (:mod:`archiver.profiles`): one ffmpeg process per
rendition, decoding and encoding in one pass and streaming, so its memory does not grow with
the recording's length (an hour and four hours take the same). The call's tags are written by
that same process (WAV: by mutagen afterwards). No shell, stdin closed, stderr kept for the error, partial
output removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from archiver.errors import TranscodeError, TransientError
from archiver.profiles import Profile

# The decoder to name for a source format (ffmpeg's default for the rest).
DECODERS = {"mp3": "mp3", "ogg": "libopus", "opus": "libopus", "flac": "flac"}
# The muxers whose tags ffmpeg writes as we want them: ID3v2 TXXX frames for MP3, Vorbis
# comments for Ogg and FLAC. ffmpeg's WAV keeps only a few RIFF INFO names, so a WAV (or any
# other) rendition is tagged afterwards (media.probe.write_tags: an ID3 chunk).
FFMPEG_TAGS = frozenset({"mp3", "ogg", "flac"})
# The WAV demuxer's packet, in bytes. ffmpeg's default is 10 ms of audio (160 bytes at 8 kHz
# mono 16-bit), and ffmpeg 7's threads hand every packet on through a queue: an hour of call
# audio made 525,000 futex calls and took 1.3 s of which 1.2 s in the kernel, into WAV. With
# 16 KiB packets (about 1 s of call audio) the same encode took 0.15 s, FLAC 1.6 -> 0.56 s;
# MP3 and WAV bytes are the same; FLAC and Opus decode to the same samples (FLAC's frames are
# laid out differently). Larger packets were slower again (64 KiB: 0.35 s). Only for a WAV
# of whole samples (PCM, float, G.711): a block codec's decode can depend on how its packets
# were cut (a Flash ADPCM file's rendition decoded 9 samples longer), and a header whose
# block size lies is decoded as ffmpeg's default would.
WAV_PACKET_BYTES = 16_384
WAV_HEAD_BYTES = 4_096  # where a WAV's fmt chunk is looked for

# What the original of a call can be. A header outside these lies, and ffmpeg believes it: a
# 200 kB WAV whose header says 2 Hz claims 14 hours, and encoding it into an MP3 took 34 s of
# CPU and wrote 200 MB. The originals providers record (WAV PCM, 32 kbit/s at the least; MP3,
# 8 kbit/s) are far above MIN_BITRATE, which leaves room for an Ogg/Opus original whose long
# silences were sent as nothing (DTX). What a header could still overstate below that, the
# Limits bound.
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
MIN_BITRATE = 2_000  # bit/s: the original's size over its claimed duration


def check_original(name: str, size: int, duration: float | None, sample_rate: int | None) -> None:
    """Refuse (TranscodeError) an original whose header claims what a call's audio cannot be."""
    if sample_rate is not None and not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise TranscodeError(
            f"{name}: the original's header says {sample_rate} Hz, which no call is recorded at"
        )
    if duration and size * 8 / duration < MIN_BITRATE:
        raise TranscodeError(
            f"{name}: the original's header claims {duration:.0f} s in {size} bytes "
            f"({size * 8 / duration:.0f} bit/s), which no call's audio fits in"
        )


@dataclass(frozen=True)
class Limits:
    """What one ffmpeg run may take: CPU seconds (``-timelimit``, enforced by the kernel) and
    output bytes (``-fs``). Generous for real audio (the bench encodes an hour in seconds of
    CPU, at most a few times the original's size), they bound what a header we could not see
    through would cost."""

    cpu_seconds: int
    max_bytes: int

    @classmethod
    def for_original(cls, size: int, duration: float | None) -> Limits:
        cpu = 60 + int(duration * 0.25) if duration else 600  # >= 4x real time
        # 64x: from 8 kHz 8-bit mu-law to 48 kHz 32-bit stereo PCM, the most a profile can ask.
        return cls(cpu_seconds=cpu, max_bytes=16 * 2**20 + 64 * size)


def find_ffmpeg(configured: str | None) -> str:
    """``ARCHIVER_FFMPEG`` (or ``[transcode] ffmpeg``), else imageio-ffmpeg's binary, else
    ``ffmpeg`` on PATH.

    Found without running anything where that is safe: imageio-ffmpeg's own lookup runs
    ``ffmpeg -version`` before it answers (15-20 ms of every command that encodes), so the
    binary its wheel ships for this platform, the one that lookup tries first, is taken from
    its path when it is there and executable; only when it is not does the lookup run (and
    try a conda or PATH ffmpeg). A binary that is there but cannot run fails the first
    encode, naming its path (``archiver doctor`` runs it)."""
    if configured:
        return configured
    try:
        import imageio_ffmpeg
    except ImportError:
        return shutil.which("ffmpeg") or "ffmpeg"
    # imageio-ffmpeg's own setting comes first there too, and is taken untried as it takes it.
    shipped = os.environ.get("IMAGEIO_FFMPEG_EXE") or _shipped_ffmpeg(imageio_ffmpeg.__file__)
    if shipped:
        return shipped
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:
        return shutil.which("ffmpeg") or "ffmpeg"


def _shipped_ffmpeg(package_init: str | None) -> str | None:
    """The binary imageio-ffmpeg's wheel ships for this platform (named as its
    ``get_ffmpeg_exe`` names it, through its private ``_definitions``: None when this
    version has other names), if it is there and executable."""
    try:
        from imageio_ffmpeg._definitions import FNAME_PER_PLATFORM, get_platform

        name = FNAME_PER_PLATFORM.get(get_platform())
    except (ImportError, AttributeError):
        return None
    if not name or not package_init:
        return None
    path = os.path.join(os.path.dirname(package_init), "binaries", name)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def _sample_coded(path: str) -> bool:
    """Whether the WAV at ``path`` codes whole samples (unreadable: no, ffmpeg says why)."""
    from archiver.media.mediacheck import wav_sample_coded

    try:
        with open(path, "rb") as fh:
            return wav_sample_coded(fh.read(WAV_HEAD_BYTES))
    except OSError:
        return False


class Transcoder:
    """Encodes files with a profile. Thread-safe: every call runs its own ffmpeg."""

    def __init__(self, ffmpeg: str) -> None:
        self.ffmpeg = ffmpeg

    def argv(
        self,
        src: str,
        src_format: str,
        profile: Profile,
        out: str,
        tags: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> list[str]:
        """The one ffmpeg command of a rendition: decode ``src``, encode
        with the profile, drop the source's own tags and write ``tags`` instead where ffmpeg
        writes them as we want (:data:`FFMPEG_TAGS`; see :meth:`encode` for the others)."""
        argv = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"]
        if limits is not None:
            argv += ["-timelimit", str(limits.cpu_seconds)]
        argv += ["-f", src_format]
        if src_format == "wav" and _sample_coded(src):
            argv += ["-max_size", str(WAV_PACKET_BYTES)]
        if src_format in DECODERS:
            argv += ["-acodec", DECODERS[src_format]]
        argv += ["-i", src, "-vn", "-map_metadata", "-1", "-acodec", profile.codec]
        if profile.bitrate:
            argv += ["-b:a", profile.bitrate]
        argv += profile.output_args()
        if tags and profile.muxer in FFMPEG_TAGS:
            for key, value in tags.items():
                argv += ["-metadata", f"{key}={value}"]
        if limits is not None:
            argv += ["-fs", str(limits.max_bytes)]
        return [*argv, "-f", profile.muxer, "-y", out]

    def encode(
        self,
        src: str,
        src_format: str,
        profile: Profile,
        out: str,
        *,
        tags: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> None:
        """Encode ``src`` into ``out``, tagged with ``tags``, within ``limits``; on failure
        nothing is left at ``out``."""
        try:
            self._run(self.argv(src, src_format, profile, out, tags, limits), profile.name, limits)
            if limits is not None and os.path.getsize(out) >= limits.max_bytes - 2**16:
                raise TranscodeError(
                    f"{profile.name}: ffmpeg's output reached its cap of {limits.max_bytes} bytes"
                )
            if tags and profile.muxer not in FFMPEG_TAGS:
                from archiver.media.probe import write_tags

                try:
                    write_tags(out, profile.ext, dict(tags))
                except ValueError as exc:
                    raise TranscodeError(f"{profile.name}: cannot write tags: {exc}") from None
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)
            raise

    def _run(self, argv: list[str], name: str, limits: Limits | None = None) -> None:
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            except FileNotFoundError:
                raise TranscodeError(f"{name}: ffmpeg not found at {self.ffmpeg!r}") from None
            except OSError as exc:
                raise TranscodeError(
                    f"{name}: cannot run ffmpeg at {self.ffmpeg!r}: {exc.strerror or exc}"
                ) from None
            try:  # wait4, not wait: the CPU the process used tells a spent budget from a failure
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            if code in (-signal.SIGINT, -signal.SIGTERM):
                # A Ctrl-C at the terminal reaches ffmpeg too (one process group): the run is
                # stopping, the profile did not fail. The recording is tried again, whole.
                raise TransientError(f"{name}: ffmpeg was stopped by {signal.Signals(-code).name}")
            # -timelimit: the kernel's SIGXCPU, which ffmpeg turns into a stop and exit 255.
            if (
                limits is not None
                and code != 0
                and usage.ru_utime + usage.ru_stime >= limits.cpu_seconds - 0.5
            ):
                raise TranscodeError(
                    f"{name}: ffmpeg used up its {limits.cpu_seconds} s of CPU and was stopped"
                )
            if code != 0:
                err.seek(0)
                message = _tail(err.read().decode(errors="replace"))
                raise TranscodeError(f"{name}: ffmpeg exited {code}: {message}")


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
