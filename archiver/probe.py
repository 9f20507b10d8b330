"""Read duration, codec and tags of an audio file. The only module that imports mutagen."""

from __future__ import annotations

import mutagen

from archiver.models import Probe


def probe_file(path: str) -> Probe:
    """What mutagen can tell about ``path``. Never raises: what it cannot read is in
    ``Probe.error``, and the file is archived all the same."""
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
            return _probe(info, codec, {}, f"tags unreadable: {exc}")
    return _probe(info, codec, tags, None)


def _probe(info: object, codec: str, tags: dict[str, str], error: str | None) -> Probe:
    length = getattr(info, "length", None)
    bitrate = getattr(info, "bitrate", None)
    return Probe(
        duration_seconds=round(float(length), 3) if length is not None else None,
        sample_rate=getattr(info, "sample_rate", None),
        channels=getattr(info, "channels", None),
        bitrate=int(bitrate) if bitrate else None,
        codec=codec,
        tags=tags,
        error=error,
    )


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
