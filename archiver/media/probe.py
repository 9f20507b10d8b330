"""Read duration, codec and tags of an audio file. The only module that imports mutagen."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

from archiver.fileio import read_all
from archiver.media.mediacheck import READ_WHOLE, verified_probe, xing_fields
from archiver.models import Probe

if TYPE_CHECKING:
    import mutagen


# The mutagen class of a format our sniff names exactly (module, class), or a rendition's
# extension (an ``.opus`` is Ogg Opus). Ogg is a container (Opus, Vorbis, FLAC): mutagen's own
# detection picks among them.
_KINDS = {
    "mp3": ("mutagen.mp3", "MP3"),
    "wav": ("mutagen.wave", "WAVE"),
    "flac": ("mutagen.flac", "FLAC"),
    "opus": ("mutagen.oggopus", "OggOpus"),
}


# What is probed: a file's path, or its whole content already read.
Source = str | bytes


def probe_download(path: str, fmt: str, provider_seconds: float | None) -> Probe:
    """The probe of a download as :func:`probe_file` makes it, checked to decode to the
    recording's length (:func:`~archiver.media.mediacheck.verified_probe`, which raises
    DamagedMedia). A file up to READ_WHOLE (minutes of call audio) is read once, and mutagen,
    the MP3 header check and the frame walk all read that: one open and one read instead of
    three opens and a few dozen seeks and reads per recording. A WAV is never read whole:
    mutagen and the check read its chunk headers only (a mmap), whatever its length."""
    if fmt == "wav":
        return verified_probe(path, fmt, probe_file(path, fmt), provider_seconds)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        data = read_all(fd, size) if 0 < size <= READ_WHOLE else None
    finally:
        os.close(fd)
    if data is None:
        return verified_probe(path, fmt, probe_file(path, fmt), provider_seconds)
    return verified_probe(path, fmt, _probe_source(data, fmt), provider_seconds, data=data)


def probe_file(path: str, fmt: str | None = None) -> Probe:
    """What mutagen can tell about ``path``. Never raises: what it cannot read is in
    ``Probe.error``, and the file is archived all the same.

    ``fmt`` is the format the file's first bytes told (:func:`archiver.media.fetch.sniff`):
    the file is read as that, without mutagen's detection (which imports and scores every
    format it knows, and cannot tell an MP3 without an ID3 tag from a temp file's name).
    Where that class cannot read it, mutagen's detection decides, and says why not. A
    rendition is probed by its extension (``opus`` too: what its profile made)."""
    return _probe_source(path, fmt)


def _readable(source: Source) -> str | io.BytesIO:
    """What mutagen reads: the path, or a fresh in-memory file of the content."""
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _probe_source(source: Source, fmt: str | None) -> Probe:
    import mutagen  # here, not at the top: `archiver --help` and listings never need it

    audio = _as_sniffed(source, fmt)
    if audio is None:
        try:
            audio = mutagen.File(_readable(source))
        except Exception as exc:  # mutagen raises many unrelated types for bad files
            return Probe(error=f"mutagen could not read the file: {type(exc).__name__}: {exc}")
    if audio is None or audio.info is None:
        return Probe(error="mutagen does not recognise the file's format")
    info = audio.info
    codec = _codec(audio)
    tags: dict[str, str] = {}
    if audio.tags is not None:
        try:
            for key, value in audio.tags.items():
                tags[str(key)] = _text(value)
        except Exception as exc:  # a damaged tag block must not lose the probe
            return _probe(info, codec, {}, f"tags unreadable: {exc}", source)
    return _probe(info, codec, tags, None, source)


def _as_sniffed(source: Source, fmt: str | None) -> mutagen.FileType | None:
    """``source`` read by the mutagen class of ``fmt``; None when there is none or it fails."""
    import importlib

    if fmt not in _KINDS:
        return None
    module, name = _KINDS[fmt]
    try:
        audio: mutagen.FileType = getattr(importlib.import_module(module), name)(_readable(source))
    except Exception:  # mutagen raises many unrelated types: its detection says what is wrong
        return None
    return audio if audio.info is not None else None


def _probe(info: object, codec: str, tags: dict[str, str], error: str | None, source: Source) -> Probe:
    length = getattr(info, "length", None)
    exact = not getattr(info, "sketchy", False)  # an MP3 without Xing/VBRI: length estimated
    if codec.startswith("mp") and exact:
        length = _ffmpeg_gapless_length(source, info) or length
    bitrate = getattr(info, "bitrate", None)
    return Probe(
        duration_seconds=round(float(length), 3) if length is not None else None,
        # Opus always decodes at 48 kHz (RFC 7845); mutagen does not report it.
        sample_rate=getattr(info, "sample_rate", None) or (48000 if codec == "opus" else None),
        channels=getattr(info, "channels", None),
        bitrate=int(bitrate) if bitrate else None,
        codec=codec,
        tags=tags,
        error=error,
    )


def _ffmpeg_gapless_length(source: Source, info: object) -> float | None:
    """Length of an MP3 whose Info/Xing header carries ffmpeg's ("Lavc"/"Lavf") LAME tag.

    mutagen applies the encoder delay and padding only when the tag says "LAME", so for
    ffmpeg-made files it counts about two frames too many (0.19 s at 8 kHz).
    """
    if isinstance(source, bytes):
        head = source[:16384]
    else:
        with open(source, "rb") as fh:
            head = fh.read(16384)
    fields = xing_fields(head)
    if fields is None:
        return None
    frames, delay, padding, encoder = fields
    if frames is None or encoder not in (b"Lavc", b"Lavf"):
        return None
    version = getattr(info, "version", 1)
    per_frame = 1152 if version == 1 else 576
    rate = getattr(info, "sample_rate", 0)
    return (frames * per_frame - delay - padding) / rate if rate else None


def _codec(audio: mutagen.FileType) -> str:
    name = type(audio).__name__
    if name == "WAVE":
        bits = getattr(audio.info, "bits_per_sample", None)
        return f"pcm_s{bits}le" if bits else "pcm"
    if name in ("MP3", "EasyMP3"):
        layer = getattr(audio.info, "layer", 3)
        return f"mp{layer}"
    return {"OggOpus": "opus", "OggVorbis": "vorbis", "FLAC": "flac"}.get(name, name.lower())


def _text(value: object) -> str:
    text = getattr(value, "text", None)
    if isinstance(text, list):
        return "; ".join(str(t) for t in text)
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def write_tags(path: str, fmt: str, tags: dict[str, str]) -> None:
    """Write call metadata into a rendition: ID3 (TXXX frames) for MP3 and WAV, Vorbis
    comments for Ogg and FLAC. Raises ``ValueError`` with mutagen's reason on failure."""
    import mutagen
    import mutagen.wave
    from mutagen.id3 import ID3, TXXX, ID3NoHeaderError

    try:
        if fmt == "mp3":
            try:
                id3 = ID3(path)
            except ID3NoHeaderError:
                id3 = ID3()
            for key, value in tags.items():
                id3.add(TXXX(encoding=3, desc=key, text=[value]))
            id3.save(path)
            return
        # A WAV is read as one (mutagen's detection imports and scores every format it knows).
        audio = mutagen.wave.WAVE(path) if fmt == "wav" else mutagen.File(path)
        if audio is None:
            raise ValueError("mutagen does not recognise the file")
        if audio.tags is None:
            audio.add_tags()
        block = audio.tags
        assert block is not None  # add_tags made it
        if fmt == "wav":
            for key, value in tags.items():
                block.add(TXXX(encoding=3, desc=key, text=[value]))
        else:
            for key, value in tags.items():
                block[key] = [value]
        audio.save()
    except ValueError:
        raise
    except Exception as exc:  # mutagen's error types vary by format
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
