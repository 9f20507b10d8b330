"""The HTTP seam shared by the provider clients: one client, pacing, status -> error.

Every provider request goes through :meth:`ApiClient.get_json`, which paces, retries
transient faults (:mod:`archiver.retry`) and translates httpx errors and HTTP statuses into
:mod:`archiver.errors`. Credentials are attached per request by :class:`CredentialScope`,
which only ever sends them to the provider's own API origin (or hosts it names), so a media
URL on S3 or a CDN, or a redirect to one, never sees them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from archiver import __version__
from archiver.errors import (
    ArchiverError,
    AuthError,
    NotFoundError,
    ProviderUnavailable,
    RecordingError,
    TransientError,
)
from archiver.redact import Redactor
from archiver.retry import RetryPolicy, retry_call, retry_hint

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def make_client(*, timeout: float = 60.0, max_connections: int = 16) -> httpx.Client:
    """The one httpx client of a run: bounded pool, timeouts, no automatic redirects, its
    connection pool made at the first request (:class:`LazyTransport`)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    # httpx takes HTTP(S)_PROXY/ALL_PROXY from the environment only for its own transport: where
    # one is set, that transport is made now, as before (urllib's getproxies() is what httpx reads).
    proxied = any(scheme != "no" for scheme in urllib.request.getproxies())
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        limits=limits,
        transport=None if proxied else LazyTransport(limits),
        follow_redirects=False,
        headers={"User-Agent": f"archiver/{__version__}"},
    )


class LazyTransport(httpx.BaseTransport):
    """httpx's own transport (certificates verified, ``SSL_CERT_FILE``/``SSL_CERT_DIR``
    honoured, ``limits`` for its pool), made when the first request needs it. Making it loads
    the CA bundle into an SSL context: 40-70 ms here, a sixth of a run that has nothing to ask
    the provider (a repeat backfill over finished windows, ``forget``). Not used where the
    environment names a proxy: httpx applies those only to a transport it makes itself."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._transport: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def _made(self) -> httpx.HTTPTransport:
        transport = self._transport
        if transport is None:
            with self._lock:
                if self._transport is None:
                    self._transport = httpx.HTTPTransport(limits=self._limits)
                transport = self._transport
        return transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._made().handle_request(request)

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()


class Pacer:
    """Spaces calls at most ``rate`` per second (thread-safe): each caller reserves a slot."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def wait(self) -> None:
        """Block until this caller's slot."""
        if not self._interval:
            return
        now, slot = self.reserve()
        if slot > now:
            self._sleep(slot - now)

    def reserve(self) -> tuple[float, float]:
        """(now, the slot reserved for this caller) on this pacer's clock; the slot is never
        before now, and the next caller's is at least one interval later."""
        with self._lock:
            now = self._clock()
            return now, self._claim(now)

    def _claim(self, now: float) -> float:
        slot = max(now, self._next)
        self._next = slot + self._interval
        return slot


class SharedPacer(Pacer):
    """A :class:`Pacer` whose "next free slot" lives in a small file, so every process on this
    machine pacing the same provider account + endpoint family shares one rate (two runs into
    two destinations together keep the provider's limit). The file is ``flock``-guarded (the
    kernel drops the lock of a dead process) and holds the next slot as wall-clock seconds,
    since monotonic clocks are not comparable across reboots.

    The folder is never created (``doctor`` must not create the catalog's folder): where the
    file cannot be used (no folder yet, read-only), pacing is per process, as :class:`Pacer`'s.
    """

    # A stored slot further ahead than this many intervals (and at least a minute) is stale:
    # the wall clock went back. Real queues are one slot per waiting thread.
    HORIZON_SLOTS = 512

    def __init__(
        self,
        rate: float,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(rate, clock=clock, sleep=sleep)
        self.path = path
        self._horizon = max(60.0, self.HORIZON_SLOTS * self._interval)

    def _claim(self, now: float) -> float:
        # Opened per request (a few syscalls against a rate of at most hundreds per second), so
        # no descriptor outlives the run that paced with it.
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return super()._claim(now)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by close, or by the kernel if we die
            data = os.pread(fd, 64, 0)
            stored = _read_slot(data)
            if stored > now + self._horizon:
                stored = 0.0
            slot = max(now, stored)
            self._next = slot + self._interval
            # One width always, so a slot is rewritten in place: a truncate per request cost
            # more than the rest of the claim (a metadata update of the file).
            record = f"{self._next:020.6f}\n".encode()
            os.pwrite(fd, record, 0)
            if len(data) > len(record):  # written by an older version, or damaged
                os.ftruncate(fd, len(record))
        except OSError:  # the file cannot be used: this slot is paced in this process only
            return super()._claim(now)
        finally:
            os.close(fd)
        return slot


def _read_slot(data: bytes) -> float:
    """The stored next slot; 0 for an empty or damaged file (a process died mid-write)."""
    try:
        value = float(data.decode("ascii").strip() or 0)
    except (UnicodeDecodeError, ValueError):
        return 0.0
    return value if value == value and value >= 0 else 0.0  # NaN and negatives: no reservation


def pacing_path(folder: str, provider: str, base_url: str, account: str, family: str) -> str:
    """The slot file of one provider account + endpoint family in ``folder`` (the catalog's):
    the same for every process that paces that account against that API."""
    digest = hashlib.sha256(f"{provider}\0{base_url.rstrip('/')}\0{account}".encode()).hexdigest()[:16]
    return os.path.join(folder, f".archiver-pace-{provider}-{digest}-{family}")


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with default ports made explicit."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


@dataclass(frozen=True)
class CredentialScope:
    """Where a provider's credentials may go: its API origin, and https hosts under the
    given domain suffixes (Plivo: ``.plivo.com``). Nowhere else, redirects included."""

    api_base_url: str
    username: str
    password: str
    trusted_suffixes: tuple[str, ...] = ()

    def allows(self, url: str) -> bool:
        if origin(url) == origin(self.api_base_url):
            return True
        scheme, host, _ = origin(url)
        return scheme == "https" and any(host.endswith(s) for s in self.trusted_suffixes)

    def auth_for(self, url: str) -> httpx.BasicAuth | None:
        return httpx.BasicAuth(self.username, self.password) if self.allows(url) else None

    def __repr__(self) -> str:  # never show the secret
        return f"CredentialScope(api_base_url={self.api_base_url!r}, username=<hidden>)"


def redact_sent(text: str, source: httpx.Response | httpx.HTTPError) -> str:
    """``text`` (provider words: a body, a header, an httpx message) without any form of the
    credentials the request behind ``source`` carried: those are what a provider can echo."""
    try:
        request = source.request
    except RuntimeError:  # an error or response not tied to a request: nothing was sent
        return text
    return Redactor.from_authorization(request.headers.get("authorization"))(text)


def describe_body(response: httpx.Response) -> str:
    """A short, safe description of an error body (Catapult and Plivo shapes, or non-JSON),
    with the request's credentials redacted wherever the provider echoed them."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        ctype = response.headers.get("content-type", "").split(";")[0] or "no content type"
        return redact_sent(f"non-JSON body ({ctype})", response)
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("category", "code", "message", "error") if body.get(k)]
        if parts:
            return redact_sent(": ".join(parts), response)
    return "JSON error body"


def error_for_status(response: httpx.Response, what: str, *, api: bool) -> ArchiverError:
    """Translate a non-2xx response. On the API (``api=True``) 401/403 end the run, except
    Catapult's per-recording ``invalid-recording-state``; on media they fail one recording."""
    status = response.status_code
    detail = f"{what}: HTTP {status} ({describe_body(response)})"
    if status in RETRY_STATUSES:
        hint = retry_hint(response.headers, datetime.now(UTC))
        return TransientError(detail, retry_after=hint)
    if status == 404:
        return NotFoundError(detail)
    if status in (401, 403):
        if api and "invalid-recording-state" not in detail:
            return AuthError(f"{detail}: the provider refused the credentials")
        return RecordingError(detail)
    return RecordingError(detail)


def decode_json(response: httpx.Response, what: str) -> Any:
    """The JSON of a 2xx response. A body that is not JSON at all (an HTML page from a proxy)
    may be passing: TransientError. JSON that can never be read (invalid UTF-8, nesting or
    numbers past the parser's limits) is RecordingError: asking again gives the same bytes."""
    try:
        return response.json()
    except json.JSONDecodeError:
        raise TransientError(f"{what}: {describe_body(response)} with HTTP {response.status_code}") from None
    except UnicodeDecodeError as exc:
        raise RecordingError(
            f"{what}: HTTP {response.status_code} body is not valid UTF-8 "
            f"(byte {exc.start} of {len(response.content)})"
        ) from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:100]
        raise RecordingError(f"{what}: HTTP {response.status_code} JSON cannot be read: {reason}") from None


def transport_error(exc: httpx.HTTPError, what: str) -> TransientError:
    """Timeouts, refused connections and cut responses: all worth a retry."""
    kind = type(exc).__name__
    said = redact_sent(str(exc), exc)
    return TransientError(f"{what}: {kind}: {said}" if said else f"{what}: {kind}")


class ApiClient:
    """JSON GETs against one provider API, paced, retried and translated."""

    def __init__(
        self,
        client: httpx.Client,
        scope: CredentialScope,
        policy: RetryPolicy,
        pacers: Mapping[str, Pacer],
    ) -> None:
        self.client = client
        self.scope = scope
        self.policy = policy
        self.pacers = pacers

    def get_json(
        self, url: str, *, params: Mapping[str, Any] | None = None, pace: str, what: str
    ) -> tuple[Any, httpx.Response]:
        """GET ``url`` and return (decoded JSON, response). Raises ProviderUnavailable when
        transient faults outlive the retries, AuthError on 401/403, RecordingError otherwise
        (another 4xx, a redirect, a URL that cannot be requested, JSON that cannot be read).
        ``what`` begins every message: name the request (and its window) there."""

        def attempt() -> tuple[Any, httpx.Response]:
            self.pacers[pace].wait()
            try:
                response = self.client.get(url, params=params, auth=self.scope.auth_for(url))
            except httpx.InvalidURL as exc:  # retrying cannot mend a URL
                raise RecordingError(f"{what}: not a usable URL: {exc}") from None
            except httpx.HTTPError as exc:
                raise transport_error(exc, what) from None
            if response.is_redirect:
                raise RecordingError(
                    f"{what}: HTTP {response.status_code} redirect, not followed ({describe_body(response)})"
                )
            if not response.is_success:
                raise error_for_status(response, what, api=True)
            return decode_json(response, what), response

        try:
            return retry_call(attempt, self.policy, what=what)
        except TransientError as exc:
            raise ProviderUnavailable(str(exc)) from None

    def delete(self, url: str, *, pace: str, what: str) -> bool:
        """DELETE ``url``: True when deleted, False when it was gone already (404)."""

        def attempt() -> bool:
            self.pacers[pace].wait()
            try:
                response = self.client.request("DELETE", url, auth=self.scope.auth_for(url))
            except httpx.HTTPError as exc:
                raise transport_error(exc, what) from None
            if response.status_code == 404:
                return False
            if not response.is_success:
                raise error_for_status(response, what, api=True)
            return True

        try:
            return retry_call(attempt, self.policy, what=what)
        except TransientError as exc:
            raise ProviderUnavailable(str(exc)) from None
