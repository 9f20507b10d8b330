"""Transcode profiles: what a rendition is (format, codec, bitrate, ...), the built-in ones and
``[profiles.NAME]`` tables of the config file, validated. Pure data: settings own them without
importing the encoder (:mod:`archiver.media.transcode`), which takes a Profile and runs ffmpeg.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from archiver.errors import ConfigError, RecordingError
from archiver.models import check_key_part


@dataclass(frozen=True)
class Profile:
    """How to encode a rendition. ``muxer`` is ffmpeg's output format, ``ext`` the key's."""

    name: str
    ext: str
    muxer: str
    codec: str
    bitrate: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    options: tuple[str, ...] = field(default_factory=tuple)

    def output_args(self) -> list[str]:
        """ffmpeg output options besides codec and bitrate, shared by both engines."""
        args: list[str] = []
        if self.sample_rate:
            args += ["-ar", str(self.sample_rate)]
        if self.channels:
            args += ["-ac", str(self.channels)]
        return args + list(self.options)


BUILTIN: Mapping[str, Profile] = {
    # Constant bitrate with a Xing/Info header: every player and mutagen get the length right.
    "mp3-mono-32k": Profile("mp3-mono-32k", "mp3", "mp3", "libmp3lame", "32k", None, 1),
    "opus-16k": Profile("opus-16k", "opus", "ogg", "libopus", "16k", None, 1, ("-application", "voip")),
    "flac": Profile("flac", "flac", "flac", "flac"),
    "wav-pcm16-8k": Profile("wav-pcm16-8k", "wav", "wav", "pcm_s16le", None, 8000, 1),
}
MUXERS = {"mp3": "mp3", "ogg": "ogg", "opus": "ogg", "flac": "flac", "wav": "wav"}
PROFILE_KEYS = {"format", "codec", "bitrate", "sample_rate", "channels", "options"}


def load_profiles(table: Mapping[str, Any]) -> dict[str, Profile]:
    """Built-in profiles plus ``[profiles.NAME]`` tables from the config file, validated."""
    profiles = dict(BUILTIN)
    for name, spec in table.items():
        where = f"[profiles.{name}]"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where} must be a table")
        unknown = set(spec) - PROFILE_KEYS
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(PROFILE_KEYS))}"
            )
        fmt = spec.get("format")
        if fmt not in MUXERS:
            raise ConfigError(f"{where}: format must be one of {', '.join(sorted(MUXERS))}, not {fmt!r}")
        codec = spec.get("codec")
        if not isinstance(codec, str) or not codec:
            raise ConfigError(f"{where}: codec is required (an ffmpeg encoder, e.g. libmp3lame)")
        for key in ("sample_rate", "channels"):
            if key in spec and (not isinstance(spec[key], int) or spec[key] <= 0):
                raise ConfigError(f"{where}: {key} must be a positive whole number")
        options = spec.get("options", [])
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise ConfigError(f'{where}: options must be a list of strings, like ["-compression_level", "8"]')
        try:
            check_key_part("profile name", name)
        except RecordingError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        profiles[name] = Profile(
            name,
            str(fmt),
            MUXERS[str(fmt)],
            codec,
            spec.get("bitrate"),
            spec.get("sample_rate"),
            spec.get("channels"),
            tuple(options),
        )
    return profiles


def pick_profiles(names: tuple[str, ...], available: Mapping[str, Profile]) -> tuple[Profile, ...]:
    """The profiles named on the command line, or a ConfigError listing the known ones."""
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(
            f"unknown transcode profile(s) {', '.join(unknown)}; known: {', '.join(sorted(available))}"
        )
    return tuple(available[n] for n in dict.fromkeys(names))
