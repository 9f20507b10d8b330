"""Making one rendition of a stored or fetched original: encode, tag, check, hash."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass

from archiver.errors import TranscodeError
from archiver.media.probe import probe_file
from archiver.media.transcode import Limits, Transcoder, check_original
from archiver.models import Probe, StoredFile
from archiver.profiles import Profile

log = logging.getLogger(__name__)

MAX_DURATION_DRIFT = 0.1  # seconds a rendition may differ from its original


@dataclass(frozen=True)
class Made:
    """A rendition on local disk, ready to store under ``file.key``."""

    path: str
    file: StoredFile


def call_tags(recording: dict[str, object], source_sha256: str) -> dict[str, str]:
    """The tags every rendition carries (from the sidecar's ``recording`` object)."""
    names = {
        "provider": "provider",
        "recording_id": "recording_id",
        "call_id": "call_id",
        "from_number": "from_number",
        "to_number": "to_number",
        "started_at": "started_at",
    }
    tags = {tag: str(recording[field]) for tag, field in names.items() if recording.get(field)}
    tags["source_sha256"] = source_sha256
    return tags


def make_rendition(
    transcoder: Transcoder,
    profile: Profile,
    *,
    src: str,
    src_format: str,
    src_probe: Probe,
    key: str,
    tags: dict[str, str],
    staging_dir: str,
) -> Made:
    """Encode ``src`` with ``profile`` and ``tags`` into ``staging_dir`` (one ffmpeg pass),
    probe the result and check its length against the original's. The caller stores and then
    removes ``Made.path``. On failure raises TranscodeError and leaves nothing behind."""
    fd, out = tempfile.mkstemp(dir=staging_dir, prefix=f".fetch-{os.getpid()}-", suffix=f".{profile.ext}")
    os.close(fd)
    try:
        log.debug("%s: encoding %s", key, profile.name)
        size = os.path.getsize(src)
        check_original(profile.name, size, src_probe.duration_seconds, src_probe.sample_rate)
        limits = Limits.for_original(size, src_probe.duration_seconds)
        transcoder.encode(src, src_format, profile, out, tags=tags, limits=limits)
        probe = probe_file(out, profile.ext)  # read as what it was made, not detected
        if probe.error or probe.duration_seconds is None:
            raise TranscodeError(f"{profile.name}: the rendition cannot be read back: {probe.error}")
        if src_probe.duration_seconds is not None:
            drift = abs(probe.duration_seconds - src_probe.duration_seconds)
            if drift > MAX_DURATION_DRIFT:
                raise TranscodeError(
                    f"{profile.name}: rendition lasts {probe.duration_seconds:.3f} s, the original "
                    f"{src_probe.duration_seconds:.3f} s (more than {MAX_DURATION_DRIFT} s apart)"
                )
        with open(out, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        size = os.path.getsize(out)
        return Made(out, StoredFile("rendition", key, profile.ext, size, digest, probe, profile=profile.name))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out)
        raise
