"""Does a downloaded copy really hold the recording? Cheap structural checks, no decoder.

mutagen reads what a file's header *says* (a WAV's data size, an MP3's Xing frame count, or
a CBR length estimated from the file size), so a truncated or forged body probes "fine". A
copy that may replace the provider's (``--delete-after-archive``) must be checked against
what is actually there: for WAV the RIFF chunks (fmt sane, data size = bytes present, block
aligned), for MP3 the frame headers walked end to end (the samples a decoder will produce).
Both are a few header reads per file, or one per frame: microseconds to a few milliseconds,
no ffmpeg process, so the check runs on every recording.

Pure functions over a bytes-like buffer, and :func:`verified_probe` which opens the file.
"""

from __future__ import annotations

import dataclasses
import math
import mmap
import os
import struct
import threading

from archiver.models import Probe

# Durations agree within 2 s or 2 %, whichever is larger (a provider's duration is the call
# leg's, ours the decoded samples': encoder delay and padding differ by a fraction of a second).
TOLERANCE_SECONDS = 2.0
TOLERANCE_RATIO = 0.02
# An MP3 must start with this many consecutive, consistent frames: noise that happens to
# contain a frame sync does not (a false sync followed by three more is ~1 in 2^40).
MIN_RUN = 4
# At most this share of an MP3 may be bytes that are not frames (junk between frames, a
# damaged stretch resynced over); more, and the copy is not the recording.
MAX_JUNK_RATIO = 0.05
# Where the first frame may start after the ID3v2 tag (padding, junk).
FIRST_FRAME_WINDOW = 64 * 1024
# A file up to this size is checked from memory (a few minutes of call audio); larger ones
# through a mmap, so a worker's memory does not grow with a recording's length.
READ_WHOLE = 4 * 1024 * 1024


Table = tuple[tuple[int, int, int, int] | None, ...]
Buffer = bytes | mmap.mmap


class DamagedMedia(ValueError):
    """The copy does not hold decodable audio of the length it claims; the message says why."""


def durations_agree(a: float, b: float) -> bool:
    """True when two durations are within the tolerance (2 s or 2 % of the longer)."""
    return abs(a - b) <= max(TOLERANCE_SECONDS, TOLERANCE_RATIO * max(a, b))


# --- WAV ---------------------------------------------------------------------------------

PCM_TAGS = frozenset({1, 3, 0xFFFE})  # integer PCM, IEEE float, WAVE_FORMAT_EXTENSIBLE


# Codecs whose packets are whole samples (PCM, float, G.711 A-law and mu-law): how a demuxer
# cuts them cannot change what they decode to.
SAMPLE_TAGS = frozenset({1, 3, 6, 7})


def wav_sample_coded(head: bytes) -> bool:
    """True when the WAV whose first bytes are ``head`` codes whole samples (:data:`SAMPLE_TAGS`,
    or WAVE_FORMAT_EXTENSIBLE naming one) in self-consistent blocks. False for ADPCM and other
    block codecs, a fmt chunk that contradicts itself, or one not in ``head``."""
    pos = 12 if head[0:4] == b"RIFF" and head[8:12] == b"WAVE" else len(head)
    while pos + 24 <= len(head):
        chunk_id, chunk_size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk_id == b"fmt ":
            tag, channels, _, _, align, bits = struct.unpack_from("<HHIIHH", head, pos + 8)
            if tag == 0xFFFE and chunk_size >= 40 and pos + 8 + 26 <= len(head):
                (tag,) = struct.unpack_from("<H", head, pos + 8 + 24)  # the subformat GUID's tag
            return tag in SAMPLE_TAGS and channels > 0 and align == channels * ((bits + 7) // 8)
        pos += 8 + chunk_size + (chunk_size & 1)
    return False


def wav_duration(buf: Buffer) -> float:
    """Seconds of audio in a RIFF/WAVE buffer, from its fmt chunk and the data bytes present.

    Raises DamagedMedia when the fmt chunk is missing or insane, or the data chunk is missing,
    not block aligned, or larger than what the file holds (a cut transfer whose header was
    written first)."""
    size = len(buf)
    if size < 12 or buf[0:4] != b"RIFF" or buf[8:12] != b"WAVE":
        raise DamagedMedia("not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int, int, int, int] | None = None
    while pos + 8 <= size:
        chunk_id = bytes(buf[pos : pos + 4])
        (chunk_size,) = struct.unpack_from("<I", buf, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if chunk_size < 16 or body + 16 > size:
                raise DamagedMedia(f"WAV fmt chunk of {chunk_size} bytes is too short")
            fmt = struct.unpack_from("<HHIIHH", buf, body)
        elif chunk_id == b"data":
            if fmt is None:
                raise DamagedMedia("WAV data chunk comes before any fmt chunk")
            return _wav_data_seconds(fmt, chunk_size, size - body)
        if body + chunk_size > size:
            raise DamagedMedia(
                f"WAV chunk {chunk_id!r} of {chunk_size} bytes at offset {pos} runs past the end "
                f"of the {size}-byte file"
            )
        pos = body + chunk_size + (chunk_size & 1)  # chunks are padded to an even size
    if fmt is None:
        raise DamagedMedia(f"WAV has no fmt chunk ({size} bytes)")
    raise DamagedMedia(f"WAV has no data chunk ({size} bytes)")


def _wav_data_seconds(fmt: tuple[int, int, int, int, int, int], declared: int, present: int) -> float:
    tag, channels, rate, byte_rate, align, bits = fmt
    if not channels or not rate or not byte_rate or not align:
        raise DamagedMedia(
            f"WAV fmt chunk is not sane (channels {channels}, rate {rate}, bytes/s {byte_rate}, "
            f"block {align})"
        )
    block = channels * ((bits + 7) // 8)
    if tag in PCM_TAGS and bits and (align != block or byte_rate != rate * align):
        raise DamagedMedia(
            f"WAV fmt chunk contradicts itself: {channels} ch x {bits} bit needs block {block} and "
            f"{rate * block} bytes/s, it says {align} and {byte_rate}"
        )
    if declared == 0xFFFFFFFF:
        raise DamagedMedia("WAV data size is the 'unknown' placeholder (a streamed file): cannot verify")
    if declared == 0:
        raise DamagedMedia("WAV data chunk is empty")
    if declared > present:
        raise DamagedMedia(f"WAV header says {declared} bytes of audio, the file holds {present}")
    if declared % align:
        raise DamagedMedia(f"WAV data size {declared} is not a whole number of {align}-byte blocks")
    return declared / byte_rate


# --- MP3 ---------------------------------------------------------------------------------

_BITRATES = {  # kbit/s by (version is MPEG-1, layer), index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


_TABLE: list[Table] = []  # built on first use
_TABLE_LOCK = threading.Lock()


def _frame_table() -> Table:
    """For every value of a frame header's 2nd and 3rd bytes: (frame length, samples, sample
    rate, signature) or None when those bits are not a valid header. Built once per process
    (65536 entries), so walking a frame is one lookup."""
    if not _TABLE:
        with _TABLE_LOCK:  # the workers' first MP3s come at once: one builds it, the others wait
            if not _TABLE:
                _TABLE.append(_build_frame_table())
    return _TABLE[0]


def _build_frame_table() -> Table:
    table: list[tuple[int, int, int, int] | None] = [None] * 0xE000  # no frame sync below 0xE0
    for value in range(0xE000, 65536):
        b1, b2 = value >> 8, value & 0xFF
        version, layer_bits = (b1 >> 3) & 3, (b1 >> 1) & 3
        br_index, sr_index, pad = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
        if version == 1 or layer_bits == 0 or br_index in (0, 15) or sr_index == 3:
            table.append(None)  # reserved, free-format or bad bitrate
            continue
        layer = 4 - layer_bits
        mpeg1 = version == 3
        kbps = _BITRATES[(mpeg1, layer)][br_index - 1]
        rate = _RATES[version][sr_index]
        if layer == 1:
            samples, length = 384, (12 * kbps * 1000 // rate + pad) * 4
        else:
            samples = 1152 if (layer == 2 or mpeg1) else 576
            length = samples // 8 * kbps * 1000 // rate + pad
        # Frames of one stream share version, layer and sample rate.
        table.append((length, samples, rate, (b1 & 0xFE) << 8 | (b2 & 0x0C)))
    return tuple(table)


def _id3v2_end(buf: Buffer) -> int:
    """Offset after the ID3v2 tag(s) at the start of ``buf`` (0 when there is none)."""
    pos = 0
    while buf[pos : pos + 3] == b"ID3":
        if len(buf) < pos + 10:
            raise DamagedMedia(f"ID3 tag cut short: the file has {len(buf)} bytes")
        flags, raw = buf[pos + 5], bytes(buf[pos + 6 : pos + 10])
        if any(b & 0x80 for b in raw):
            raise DamagedMedia("ID3 tag size is not a syncsafe number")
        tag_size = raw[0] << 21 | raw[1] << 14 | raw[2] << 7 | raw[3]
        pos += 10 + tag_size + (10 if flags & 0x10 else 0)  # header, body, footer
    return pos


def _run_at(buf: Buffer, pos: int, table: Table, n: int) -> bool:
    """True when ``n`` consistent frames follow one another from ``pos`` (or up to the end)."""
    size = len(buf)
    sig = None
    for _ in range(n):
        if pos + 4 > size:
            return sig is not None
        if buf[pos] != 0xFF:
            return False
        entry = table[buf[pos + 1] << 8 | buf[pos + 2]]
        if entry is None or (sig is not None and entry[3] != sig):
            return False
        sig = entry[3]
        pos += entry[0]
    return True


def _find_frame(buf: Buffer, start: int, stop: int, table: Table, n: int) -> int:
    """The first offset in [start, stop) where ``n`` consistent frames begin, or -1."""
    pos = start
    while True:
        pos = buf.find(b"\xff", pos, stop)
        if pos < 0:
            return -1
        if _run_at(buf, pos, table, n):
            return pos
        pos += 1


def xing_fields(head: bytes) -> tuple[int | None, int, int, bytes] | None:
    """(frame count, encoder delay, padding, encoder) from the Info/Xing header in ``head``
    (a file's first bytes), or None when there is none. Delay and padding are 0 without a
    LAME-style tag. The tag layout is LAME's: encoder string (9 bytes), then delay and padding
    as two 12-bit numbers 12 bytes on."""
    for marker in (b"Info", b"Xing"):
        at = head.find(marker)
        if at < 0:
            continue
        flags = int.from_bytes(head[at + 4 : at + 8], "big")
        pos = at + 8
        frames = None
        if flags & 1:
            frames = int.from_bytes(head[pos : pos + 4], "big")
            pos += 4
        pos += (4 if flags & 2 else 0) + (100 if flags & 4 else 0) + (4 if flags & 8 else 0)
        encoder = bytes(head[pos : pos + 4])
        if encoder not in (b"LAME", b"Lavc", b"Lavf") or len(head) < pos + 24:
            return frames, 0, 0, encoder
        packed = int.from_bytes(head[pos + 21 : pos + 24], "big")
        return frames, packed >> 12, packed & 0xFFF, encoder
    return None


def _is_trailer(buf: Buffer, pos: int) -> bool:
    """True when what is left from ``pos`` is a tag players skip (ID3v1, APE, Lyrics3)."""
    rest = len(buf) - pos
    head = bytes(buf[pos : pos + 8])
    return (head[:3] == b"TAG" and rest == 128) or head == b"APETAGEX" or head[:6] == b"LYRICS"


def mp3_duration(buf: Buffer) -> float:
    """Seconds a decoder gets from an MPEG audio buffer: every frame header walked, samples
    summed (the Xing/Info frame, which holds no audio, not counted).

    Raises DamagedMedia when no run of valid frames starts the stream, or when more than
    :data:`MAX_JUNK_RATIO` of the file is not frames."""
    table = _frame_table()
    size = len(buf)
    start = _id3v2_end(buf)
    first = _find_frame(buf, start, min(size, start + FIRST_FRAME_WINDOW), table, MIN_RUN)
    if first < 0:
        raise DamagedMedia(f"no MPEG audio frames in the {size}-byte file")
    entry = table[buf[first + 1] << 8 | buf[first + 2]]
    assert entry is not None
    sig, rate = entry[3], entry[2]
    frame = bytes(buf[first : first + min(entry[0], 64)])
    pos = first
    samples = 0
    junk = first - start
    trim = 0
    if b"Xing" in frame or b"Info" in frame or b"VBRI" in frame:
        pos += entry[0]  # the header frame: its samples are silence decoders drop
        fields = xing_fields(bytes(buf[first : first + entry[0]]))
        if fields is not None:
            trim = fields[1] + fields[2]  # encoder delay and padding, which gapless decoders drop
    while pos + 4 <= size:
        entry = table[buf[pos + 1] << 8 | buf[pos + 2]] if buf[pos] == 0xFF else None
        if entry is not None and entry[3] == sig:
            if pos + entry[0] > size:
                break  # a last frame cut short: decoders drop it
            samples += entry[1]
            pos += entry[0]
            continue
        if _is_trailer(buf, pos):
            break
        # Not a frame: resync on the next run of frames, counting what is skipped.
        found = _find_frame(buf, pos + 1, size, table, 2)
        if found < 0:
            junk += size - pos
            break
        junk += found - pos
        pos = found
    if junk > MAX_JUNK_RATIO * size:
        raise DamagedMedia(f"{junk} of the file's {size} bytes are not MPEG audio frames")
    if not samples:
        raise DamagedMedia("the MPEG stream holds no audio frames")
    return (samples - trim if trim < samples else samples) / rate


# --- the check ---------------------------------------------------------------------------

WALKERS = {"wav": wav_duration, "mp3": mp3_duration}


def decoded_duration(buf: Buffer, fmt: str) -> float | None:
    """The duration a decoder will find in ``buf`` for the formats walked here (wav, mp3);
    None for others (their probe is trusted). Raises DamagedMedia."""
    walker = WALKERS.get(fmt)
    return walker(buf) if walker is not None else None


def verified_probe(
    path: str, fmt: str, probe: Probe, provider_seconds: float | None, *, data: bytes | None = None
) -> Probe:
    """``probe`` checked against the bytes in ``path``: it must have no error and a duration,
    the decoded duration (where walked) replaces a header's claim that disagrees with it, and
    the result must agree with the provider's duration when the provider gives one.

    Returns the probe to keep (with the trustworthy duration); raises DamagedMedia naming the
    reason otherwise. ``data``, when given, is the file's whole content, read already."""
    if probe.error:
        raise DamagedMedia(probe.error)
    decoded = None
    if fmt in WALKERS and data is not None:
        if not data:
            raise DamagedMedia("the file is empty")
        decoded = decoded_duration(data, fmt)
    elif fmt in WALKERS:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise DamagedMedia("the file is empty")
            if size <= READ_WHOLE and fmt != "wav":  # walking bytes: twice as fast as a mmap
                decoded = decoded_duration(fh.read(), fmt)
            else:  # mmap: a WAV is read by its chunk headers only, never into memory
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                    decoded = decoded_duration(buf, fmt)
    claimed = probe.duration_seconds
    if decoded is not None and (claimed is None or not durations_agree(decoded, claimed)):
        # The header lies (a forged Xing count, a WAV size from before the cut): keep what a
        # decoder will actually find.
        probe = dataclasses.replace(probe, duration_seconds=round(decoded, 3))
    if probe.duration_seconds is None:
        raise DamagedMedia("no duration can be read from the file")
    given = provider_seconds
    sane = given is not None and math.isfinite(given) and given > 0
    if given is not None and sane and not durations_agree(probe.duration_seconds, given):
        raise DamagedMedia(
            f"it decodes to {probe.duration_seconds:.3f} s but the provider says the recording lasts "
            f"{given:.3f} s (tolerance {TOLERANCE_SECONDS:g} s or {TOLERANCE_RATIO:.0%})"
        )
    return probe
