"""Read duration, codec and tags of an audio file. The only module that imports mutagen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archiver.media.mediacheck import xing_fields
from archiver.models import Probe

if TYPE_CHECKING:
    import mutagen


# The mutagen class of a format our sniff names exactly (module, class). Ogg is a container
# (Opus, Vorbis, FLAC): mutagen's own detection picks among them.
_KINDS = {"mp3": ("mutagen.mp3", "MP3"), "wav": ("mutagen.wave", "WAVE"), "flac": ("mutagen.flac", "FLAC")}


def probe_file(path: str, fmt: str | None = None) -> Probe:
    """What mutagen can tell about ``path``. Never raises: what it cannot read is in
    ``Probe.error``, and the file is archived all the same.

    ``fmt`` is the format the file's first bytes told (:func:`archiver.media.fetch.sniff`):
    the file is read as that, without mutagen's detection (which imports and scores every
    format it knows, and cannot tell an MP3 without an ID3 tag from a temp file's name).
    Where that class cannot read it, mutagen's detection decides, and says why not."""
    import mutagen  # here, not at the top: `archiver --help` and listings never need it

    audio = _as_sniffed(path, fmt)
    if audio is None:
        try:
            audio = mutagen.File(path)
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
            return _probe(info, codec, {}, f"tags unreadable: {exc}", path)
    return _probe(info, codec, tags, None, path)


def _as_sniffed(path: str, fmt: str | None) -> mutagen.FileType | None:
    """``path`` read by the mutagen class of ``fmt``; None when there is none or it fails."""
    import importlib

    if fmt not in _KINDS:
        return None
    module, name = _KINDS[fmt]
    try:
        audio: mutagen.FileType = getattr(importlib.import_module(module), name)(path)
    except Exception:  # mutagen raises many unrelated types: its detection says what is wrong
        return None
    return audio if audio.info is not None else None


def _probe(info: object, codec: str, tags: dict[str, str], error: str | None, path: str = "") -> Probe:
    length = getattr(info, "length", None)
    exact = not getattr(info, "sketchy", False)  # an MP3 without Xing/VBRI: length estimated
    if codec.startswith("mp") and exact and path:
        length = _ffmpeg_gapless_length(path, info) or length
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


def _ffmpeg_gapless_length(path: str, info: object) -> float | None:
    """Length of an MP3 whose Info/Xing header carries ffmpeg's ("Lavc"/"Lavf") LAME tag.

    mutagen applies the encoder delay and padding only when the tag says "LAME", so for
    ffmpeg-made files it counts about two frames too many (0.19 s at 8 kHz).
    """
    with open(path, "rb") as fh:
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
        audio = mutagen.File(path)
        if audio is None:
            raise ValueError("mutagen does not recognise the file")
        if audio.tags is None:
            audio.add_tags()
        if fmt == "wav":
            for key, value in tags.items():
                audio.tags.add(TXXX(encoding=3, desc=key, text=[value]))
        else:
            for key, value in tags.items():
                audio.tags[key] = [value]
        audio.save()
    except ValueError:
        raise
    except Exception as exc:  # mutagen's error types vary by format
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
