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

from archiver.errors import TranscodeError, TransientError
from archiver.profiles import Profile

# The decoder to name for a source format (ffmpeg's default for the rest).
DECODERS = {"mp3": "mp3", "ogg": "libopus", "opus": "libopus", "flac": "flac"}
# The muxers whose tags ffmpeg writes as we want them: ID3v2 TXXX frames for MP3, Vorbis
# comments for Ogg and FLAC. ffmpeg's WAV keeps only a few RIFF INFO names, so a WAV (or any
# other) rendition is tagged afterwards (media.probe.write_tags: an ID3 chunk).
FFMPEG_TAGS = frozenset({"mp3", "ogg", "flac"})


def find_ffmpeg(configured: str | None) -> str:
    """``ARCHIVER_FFMPEG``, else the binary imageio-ffmpeg ships, else ``ffmpeg`` on PATH."""
    if configured:
        return configured
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg") or "ffmpeg"


class Transcoder:
    """Encodes files with a profile. Thread-safe: every call runs its own ffmpeg."""

    def __init__(self, ffmpeg: str) -> None:
        self.ffmpeg = ffmpeg

    def argv(
        self, src: str, src_format: str, profile: Profile, out: str, tags: Mapping[str, str] | None = None
    ) -> list[str]:
        """The one ffmpeg command of a rendition: decode ``src``, encode
        with the profile, drop the source's own tags and write ``tags`` instead where ffmpeg
        writes them as we want (:data:`FFMPEG_TAGS`; see :meth:`encode` for the others)."""
        argv = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", src_format]
        if src_format in DECODERS:
            argv += ["-acodec", DECODERS[src_format]]
        argv += ["-i", src, "-vn", "-map_metadata", "-1", "-acodec", profile.codec]
        if profile.bitrate:
            argv += ["-b:a", profile.bitrate]
        argv += profile.output_args()
        if tags and profile.muxer in FFMPEG_TAGS:
            for key, value in tags.items():
                argv += ["-metadata", f"{key}={value}"]
        return [*argv, "-f", profile.muxer, "-y", out]

    def encode(
        self,
        src: str,
        src_format: str,
        profile: Profile,
        out: str,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Encode ``src`` into ``out``, tagged with ``tags``; on failure nothing is left at
        ``out``."""
        try:
            self._run(self.argv(src, src_format, profile, out, tags), profile.name)
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

    def _run(self, argv: list[str], name: str) -> None:
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            except FileNotFoundError:
                raise TranscodeError(f"{name}: ffmpeg not found at {self.ffmpeg!r}") from None
            except OSError as exc:
                raise TranscodeError(
                    f"{name}: cannot run ffmpeg at {self.ffmpeg!r}: {exc.strerror or exc}"
                ) from None
            if proc.returncode in (-signal.SIGINT, -signal.SIGTERM):
                # A Ctrl-C at the terminal reaches ffmpeg too (one process group): the run is
                # stopping, the profile did not fail. The recording is tried again, whole.
                raise TransientError(f"{name}: ffmpeg was stopped by {signal.Signals(-proc.returncode).name}")
            if proc.returncode != 0:
                err.seek(0)
                message = _tail(err.read().decode(errors="replace"))
                raise TranscodeError(f"{name}: ffmpeg exited {proc.returncode}: {message}")


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
