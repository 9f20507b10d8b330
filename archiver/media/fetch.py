"""Stream a recording's media to a local temp file: SHA-256 and size while streaming, the
declared length checked, the bytes sniffed. A body that is not audio is never kept; a
transfer cut short is retried from scratch."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httpx

from archiver.errors import NotAudioError, RecordingError, TransientError, write_error
from archiver.fileio import write_all
from archiver.models import Fetched, Recording, sanitize_url
from archiver.providers.base import Provider
from archiver.providers.http import error_for_status, redact_sent, transport_error
from archiver.retry import RetryPolicy, retry_call

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECT_BODY_BYTES = 64 * 1024  # a redirect's body read (so its connection is kept) up to this
SNIFF_BYTES = 16
# A download's deadline is the larger of the configured floor and its expected size at this
# pace: a server dripping bytes just fast enough to beat the read timeout cannot hold a
# worker for longer.
DEADLINE_PACE = 64 * 1024  # bytes per second
# Without a Content-Length the expected size is the provider's duration at the densest audio
# a call recording could be (48 kHz, 24-bit, stereo PCM): generous, never too short.
MAX_AUDIO_BYTES_PER_SECOND = 48000 * 3 * 2


def sniff(head: bytes) -> str | None:
    """The audio format told by a file's first bytes, or None when they are not audio."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "mp3"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    return None


def describe_non_audio(head: bytes) -> str:
    """Name what a non-audio body looks like, for the error message."""
    if not head:
        return "an empty body"
    text = head.lstrip()[:16].lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if text.startswith(b"<"):
        return "an XML/HTML document"
    if text.startswith((b"{", b"[")):
        return "a JSON document"
    return f"unrecognised bytes {head[:8].hex()}"


def check_media_url(rec: Recording, url: str) -> None:
    """RecordingError (not retried) unless ``url`` is an absolute http(s) URL: a provider's
    ``file://``, ``ftp://`` or relative media link is not something we fetch."""
    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return
    if not parts.scheme:
        problem = "is relative (no scheme and host)"
    elif parts.scheme.lower() in ("http", "https"):
        problem = "has no host"
    else:
        problem = f"has the URL scheme {parts.scheme!r}"
    try:
        shown = sanitize_url(url)  # no user info or presigned query in our messages
    except ValueError:  # a port that is not a number
        shown = f"{parts.scheme}:..."
    raise RecordingError(
        f"media URL of {rec.recording_id} {problem}: only absolute http(s) URLs are fetched ({shown})",
        stage="fetch",
    )


def download_deadline(floor: float, content_length: int | None, duration: float | None) -> float:
    """Seconds one download may take: ``max(floor, expected size / 64 KiB/s)``, the size from
    Content-Length, else from the provider's duration at the densest plausible audio."""
    expected = content_length
    if expected is None and duration is not None and 0 < duration < 10**7:
        expected = int(duration * MAX_AUDIO_BYTES_PER_SECOND)
    return max(floor, (expected or 0) / DEADLINE_PACE)


def fetch_media(
    client: httpx.Client,
    provider: Provider,
    rec: Recording,
    staging_dir: str,
    policy: RetryPolicy,
    *,
    deadline_floor: float = 120.0,
    stop: threading.Event | None = None,
) -> Fetched:
    """Download ``rec``'s media into ``staging_dir``; the caller owns (and removes) the file.

    Each attempt must finish within :func:`download_deadline` (``deadline_floor`` at least).
    Raises NotAudioError, NotFoundError, RecordingError, or TransientError once retries
    are spent; nothing is left in ``staging_dir`` on failure.
    """
    if not rec.media_url:
        raise RecordingError(f"recording {rec.recording_id} has no media URL", stage="fetch")
    url = rec.media_url
    check_media_url(rec, url)  # before the retry loop: no attempt can make it fetchable
    return retry_call(
        lambda: _attempt(client, provider, rec, url, staging_dir, deadline_floor),
        policy,
        what=f"download of {rec.recording_id}",
        stop=stop,
    )


def _attempt(
    client: httpx.Client, provider: Provider, rec: Recording, url: str, staging_dir: str, floor: float
) -> Fetched:
    what = f"media of {rec.recording_id}"
    started = time.monotonic()
    for _ in range(MAX_REDIRECTS + 1):
        provider.pace_media(url)
        try:
            with client.stream("GET", url, auth=provider.media_auth(url)) as response:
                if response.is_redirect and "location" in response.headers:
                    # Each hop decides its own credentials: none cross to another host.
                    _drain_small(response)
                    url = urljoin(url, response.headers["location"])
                    check_media_url(rec, url)
                    continue
                if not response.is_success:
                    response.read()  # error bodies are small; the message quotes them
                    raise error_for_status(response, what, api=False)
                return _save(response, rec, url, staging_dir, started, floor)
        except httpx.HTTPError as exc:
            raise transport_error(exc, what) from None
    raise RecordingError(f"{what}: more than {MAX_REDIRECTS} redirects", stage="fetch")


def _drain_small(response: httpx.Response) -> None:
    """Read a redirect's body when it says it is small (they are empty or a line of HTML): a
    response closed unread closes its connection too, so every redirect through the API host
    cost a new connection (a TLS handshake on a real provider). A body it does not announce
    as small is not waited for: the response is closed, and its connection with it."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= REDIRECT_BODY_BYTES:
        response.read()


def _not_audio(rec: Recording, head: bytes, response: httpx.Response) -> NotAudioError:
    ctype = redact_sent(response.headers.get("content-type", "no content type"), response)
    what = describe_non_audio(head)
    return NotAudioError(
        f"media of {rec.recording_id} is {what}, not audio (HTTP {response.status_code}, {ctype})"
    )


def _save(
    response: httpx.Response, rec: Recording, url: str, staging_dir: str, started: float, floor: float
) -> Fetched:
    declared = response.headers.get("content-length")
    expected = int(declared) if declared and declared.isdigit() else None
    if response.headers.get("content-encoding", "identity") != "identity":
        expected = None  # the header counts encoded bytes; we keep decoded ones
    limit = download_deadline(floor, expected, rec.duration_seconds)
    try:
        fd, tmp = tempfile.mkstemp(dir=staging_dir, prefix="fetch-", suffix=".part")
    except OSError as exc:
        raise write_error(
            f"the download of {rec.recording_id} to {staging_dir}", exc, stage="fetch"
        ) from None
    try:
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            try:
                # Chunks as they arrive (no re-chunking), so the deadline is checked on every read:
                # the read timeout bounds the wait for each one, the deadline the whole body.
                for chunk in response.iter_bytes():
                    if time.monotonic() - started > limit:
                        raise TransientError(
                            f"media of {rec.recording_id}: download deadline of {limit:.0f} s passed "
                            f"after {size} bytes (the server sends too slowly)",
                            stage="fetch",
                        )
                    if len(head) < SNIFF_BYTES:
                        head += chunk[: SNIFF_BYTES - len(head)]
                        if len(head) == SNIFF_BYTES and sniff(head) is None:
                            raise _not_audio(rec, head, response)  # stop reading an error page early
                    digest.update(chunk)
                    try:
                        write_all(fd, chunk)  # the descriptor itself: no buffered file around it
                    except OSError as exc:
                        raise write_error(f"the download of {rec.recording_id}", exc, stage="fetch") from None
                    size += len(chunk)
            finally:
                os.close(fd)
        except OSError as exc:  # closing can fail too (a network file system's full disk)
            raise write_error(f"the download of {rec.recording_id}", exc, stage="fetch") from None
        if expected is not None and size != expected:
            raise TransientError(
                f"media of {rec.recording_id} cut short: {size} of {expected} bytes", stage="fetch"
            )
        fmt = sniff(head)
        if fmt is None:
            raise _not_audio(rec, head, response)
        if rec.format_hint and rec.format_hint != fmt:
            log.warning(
                "recording %s: provider says %s but the bytes are %s; keeping %s",
                rec.recording_id,
                rec.format_hint,
                fmt,
                fmt,
            )
        return Fetched(
            path=tmp,
            bytes=size,
            sha256=digest.hexdigest(),
            format=fmt,
            media_url=url,
            fetched_at=datetime.now(UTC),
        )
    except BaseException:
        os.unlink(tmp)
        raise
