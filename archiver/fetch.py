"""Stream a recording's media to a local temp file: SHA-256 and size while streaming, the
declared length checked, the bytes sniffed. A body that is not audio is never kept; a
transfer cut short is retried from scratch."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from datetime import UTC, datetime
from urllib.parse import urljoin

import httpx

from archiver.errors import NotAudioError, RecordingError, TransientError
from archiver.models import Fetched, Recording
from archiver.providers.base import Provider
from archiver.providers.http import error_for_status, redact_sent, transport_error
from archiver.retry import RetryPolicy, retry_call

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
MAX_REDIRECTS = 5
SNIFF_BYTES = 16


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


def fetch_media(
    client: httpx.Client,
    provider: Provider,
    rec: Recording,
    staging_dir: str,
    policy: RetryPolicy,
) -> Fetched:
    """Download ``rec``'s media into ``staging_dir``; the caller owns (and removes) the file.

    Raises NotAudioError, NotFoundError, RecordingError, or TransientError once retries
    are spent; nothing is left in ``staging_dir`` on failure.
    """
    if not rec.media_url:
        raise RecordingError(f"recording {rec.recording_id} has no media URL", stage="fetch")
    url = rec.media_url
    return retry_call(
        lambda: _attempt(client, provider, rec, url, staging_dir),
        policy,
        what=f"download of {rec.recording_id}",
    )


def _attempt(client: httpx.Client, provider: Provider, rec: Recording, url: str, staging_dir: str) -> Fetched:
    what = f"media of {rec.recording_id}"
    for _ in range(MAX_REDIRECTS + 1):
        provider.pace_media(url)
        try:
            with client.stream("GET", url, auth=provider.media_auth(url)) as response:
                if response.is_redirect and "location" in response.headers:
                    # Each hop decides its own credentials: none cross to another host.
                    url = urljoin(url, response.headers["location"])
                    continue
                if not response.is_success:
                    response.read()  # error bodies are small; the message quotes them
                    raise error_for_status(response, what, api=False)
                return _save(response, rec, url, staging_dir)
        except httpx.HTTPError as exc:
            raise transport_error(exc, what) from None
    raise RecordingError(f"{what}: more than {MAX_REDIRECTS} redirects", stage="fetch")


def _not_audio(rec: Recording, head: bytes, response: httpx.Response) -> NotAudioError:
    ctype = redact_sent(response.headers.get("content-type", "no content type"), response)
    what = describe_non_audio(head)
    return NotAudioError(
        f"media of {rec.recording_id} is {what}, not audio (HTTP {response.status_code}, {ctype})"
    )


def _save(response: httpx.Response, rec: Recording, url: str, staging_dir: str) -> Fetched:
    declared = response.headers.get("content-length")
    expected = int(declared) if declared and declared.isdigit() else None
    if response.headers.get("content-encoding", "identity") != "identity":
        expected = None  # the header counts encoded bytes; we keep decoded ones
    fd, tmp = tempfile.mkstemp(dir=staging_dir, prefix=f".fetch-{os.getpid()}-", suffix=".part")
    try:
        digest = hashlib.sha256()
        size = 0
        head = b""
        with os.fdopen(fd, "wb") as out:
            for chunk in response.iter_bytes(CHUNK):
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                    if len(head) == SNIFF_BYTES and sniff(head) is None:
                        raise _not_audio(rec, head, response)  # stop reading an error page early
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
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
