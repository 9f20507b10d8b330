"""Speech-like test audio: voiced syllables and pauses, 8 kHz mono, exact length.

Standard library only (plus the ffmpeg binary for MP3), and shared with nothing in the
clients: the simulator must not copy a client's bugs.
"""

from __future__ import annotations

import io
import math
import os
import random
import struct
import subprocess
import tempfile
import wave
from functools import lru_cache

RATE = 8000


@lru_cache(maxsize=8)
def _syllables(seed: int) -> tuple[bytes, ...]:
    """A dozen voiced syllables (harmonics of a gliding pitch under a smooth envelope)."""
    rng = random.Random(seed)
    out = []
    for _ in range(12):
        n = int(RATE * rng.uniform(0.12, 0.26))
        f0 = rng.uniform(95, 230)
        glide = rng.uniform(-0.25, 0.25)
        weights = [1.0, rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.6), rng.uniform(0.05, 0.3)]
        samples = []
        phase = 0.0
        for i in range(n):
            t = i / n
            phase += 2 * math.pi * f0 * (1 + glide * t) / RATE
            env = math.sin(math.pi * t) ** 2
            v = sum(w * math.sin((k + 1) * phase) for k, w in enumerate(weights))
            samples.append(int(7000 * env * v / 2.2))
        out.append(struct.pack(f"<{n}h", *samples))
    return tuple(out)


def speech_pcm(duration_seconds: float, seed: int) -> bytes:
    """Exactly ``round(duration * 8000)`` samples of signed 16-bit little-endian PCM."""
    total = round(duration_seconds * RATE) * 2
    syllables = _syllables(seed % 8)
    rng = random.Random(seed)
    parts: list[bytes] = []
    size = 0
    while size < total:
        for _ in range(rng.randint(1, 4)):
            chunk = syllables[rng.randrange(len(syllables))]
            gap = b"\x00\x00" * int(RATE * rng.uniform(0.03, 0.12))
            parts += [chunk, gap]
            size += len(chunk) + len(gap)
        pause = b"\x00\x00" * int(RATE * rng.uniform(0.25, 0.8))
        parts.append(pause)
        size += len(pause)
    return b"".join(parts)[:total]


def wav_bytes(duration_seconds: float, seed: int) -> bytes:
    """A RIFF/WAVE file, 8 kHz 16-bit mono."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(speech_pcm(duration_seconds, seed))
    return buf.getvalue()


def mp3_bytes(duration_seconds: float, seed: int, ffmpeg: str, *, info_header: bool = True) -> bytes:
    """The same audio as MP3 (CBR 32 kbit/s) through ffmpeg. Written to a file, ffmpeg adds an
    Info header with the frame count and gapless delay/padding; streamed (``info_header=False``)
    it cannot, and readers must estimate the length, as with some providers' files."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "a.mp3") if info_header else "pipe:1"
        argv = [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "s16le",
            "-ar",
            str(RATE),
            "-ac",
            "1",
            "-i",
            "pipe:0",
            "-codec:a",
            "libmp3lame",
            "-b:a",
            "32k",
            "-f",
            "mp3",
            out,
        ]
        proc = subprocess.run(
            argv, input=speech_pcm(duration_seconds, seed), capture_output=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg could not make simulator MP3: {proc.stderr.decode(errors='replace')}")
        if not info_header:
            return proc.stdout
        with open(out, "rb") as fh:
            return fh.read()
