"""What may leave the process as text: secrets taken out, control characters made visible.

:class:`Redactor` is the one redaction function of archiver. It removes each secret in every
form we can know a provider (or a library) might write it back to us in:

- the plain value, and any URL-encoding of it (``quote``, ``quote_plus``, lower-case hex, any
  mix of encoded and plain characters) and JSON escapes of it (``\\uXXXX``, ``\\"``, ``\\\\``),
  so it also works on serialized text (a report, a catalog row);
- base64 (standard or URL-safe alphabet, padded or not) of the secret alone, or of the secret
  inside any longer base64 text, such as the ``Basic base64(user:password)`` of an
  Authorization header: base64 of a secret at offset *n* in a byte string always contains one
  of three fixed "cores" (one per ``n % 3``), so finding a core finds the secret whatever
  surrounds it. The whole base64 word holding a core is removed.

It is applied where provider text enters our errors (:mod:`archiver.providers.http`) and again,
as defence in depth, at every sink (log records, the lines the CLI prints, the report, the
catalog, the metrics file).

:func:`escape_controls` makes C0/C1 control characters, DEL, Unicode line and paragraph
separators and bidi overrides visible (``\\n``, ``\\x1b``, ``\\u2028``), so a provider id can
neither forge a log line nor drive the terminal.
"""

from __future__ import annotations

import base64
import functools
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"
CACHED_LENGTH = 64  # strings up to this long have their redaction remembered (Redactor._cached)

# Shorter values are too likely to be ordinary text; real provider secrets are 20+ chars.
MIN_SECRET = 4
# A base64 core shorter than this could match ordinary base64 by chance.
MIN_CORE = 8

_B64_WORD = re.compile(r"[A-Za-z0-9+/_-]")


class Redactor:
    """Replaces every form of the given secrets with ``***``. Calling it with no secrets is
    the identity. ``pairs`` are (user, password) Basic credentials: their exact header value
    is removed too (the password's cores already catch it; the user alone is not secret)."""

    def __init__(self, secrets: Iterable[str | None] = (), pairs: Iterable[tuple[str, str]] = ()) -> None:
        values = sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
        self._count = len(values)
        cores: set[str] = set()
        for value in values:
            cores |= _b64_cores(value.encode("utf-8"))
        for user, password in pairs:
            if password and len(password) >= MIN_SECRET:
                cores |= _b64_cores(f"{user}:{password}".encode())
        self._text = re.compile("|".join(_text_pattern(v) for v in values)) if values else None
        self._b64 = (
            re.compile("|".join(_b64_pattern(c) for c in sorted(cores, key=len, reverse=True)))
            if cores
            else None
        )
        # A sidecar's keys and most of its values (names, states, formats) are the same short
        # strings recording after recording: each is searched once, not twice (two regex
        # scans) per sidecar of ~80 strings: 104 -> 53 us for one, 75 us with unique ids.
        self._cached = functools.lru_cache(maxsize=4096)(self._redact)

    @classmethod
    def from_authorization(cls, header: str | None) -> Redactor:
        """Everything an ``Authorization`` header carried: a Basic header's user and password
        (for Catapult the user is the API token), or a bearer-style token."""
        if not header:
            return cls()
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return cls([value])
            return cls([user, password, value], [(user, password)])
        return cls([value or scheme])

    def __bool__(self) -> bool:
        return self._count > 0 or self._b64 is not None

    def __call__(self, text: str) -> str:
        """``text`` without any form of the secrets."""
        if not text or (self._b64 is None and self._text is None):
            return text
        if len(text) <= CACHED_LENGTH:
            return self._cached(text)
        return self._redact(text)

    def _redact(self, text: str) -> str:
        if self._b64 is not None:
            text = self._b64_redact(text)
        if self._text is not None:
            text = self._text.sub(REDACTED, text)
        return text

    def doc(self, value: Any) -> Any:
        """A JSON-like document (dicts, lists, strings) with every string redacted."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self(k) if isinstance(k, str) else k: self.doc(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.doc(v) for v in value]
        return value

    def _b64_redact(self, text: str) -> str:
        assert self._b64 is not None
        out: list[str] = []
        pos = 0
        for m in self._b64.finditer(text):
            start, end = m.start(), m.end()
            if start < pos:  # inside a word already removed
                continue
            # Widen to the whole base64 word: what sits beside a core is the secret's edge.
            while start > pos and _B64_WORD.match(text, start - 1):
                start -= 1
            while end < len(text) and _B64_WORD.match(text, end):
                end += 1
            while end < len(text) and text[end] == "=":
                end += 1
            out.append(text[pos:start])
            out.append(REDACTED)
            pos = end
        out.append(text[pos:])
        return "".join(out)


def _text_pattern(secret: str) -> str:
    """A regex for ``secret`` with each character plain, percent-encoded (any case, '+' for
    a space) or JSON-escaped."""
    parts = []
    for ch in secret:
        alts = [re.escape(ch)]
        encoded = "".join(f"%{b:02x}" for b in ch.encode("utf-8"))
        alts.append(f"(?i:{re.escape(encoded)})")
        if ord(ch) <= 0xFFFF:
            alts.append(f"(?i:\\\\u{ord(ch):04x})")
        if ch in '"\\/':
            alts.append(re.escape("\\" + ch))
        if ch == " ":
            alts.append(r"\+")
        parts.append("(?:" + "|".join(alts) + ")")
    return "".join(parts)


def _b64_cores(data: bytes) -> set[str]:
    """The base64 characters that only ``data``'s bytes decide, at each of the three
    alignments ``data`` can have inside longer base64 text."""
    cores: set[str] = set()
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + data).decode("ascii")
        start, end = -(-8 * k // 6), 8 * (k + len(data)) // 6
        core = enc[start:end]
        if len(core) >= MIN_CORE:
            cores.add(core)
    return cores


def _b64_pattern(core: str) -> str:
    """``core`` in either alphabet (``+/`` standard, ``-_`` URL-safe)."""
    return "".join({"+": "[+-]", "/": "[/_]"}.get(c, c) for c in core)


# C0 but tab, DEL, C1, line/paragraph separators, bidi embeddings/overrides/isolates.
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) <= 0xFF else f"\\u{ord(ch):04x}"


def escape_controls(text: str) -> str:
    """``text`` as one visible line: every control character written as an escape."""
    return _CONTROLS.sub(_escape, text)


def json_line(text: str) -> str:
    """A ``json.dumps(..., ensure_ascii=False)`` line with the characters it leaves raw (DEL,
    C1, line/paragraph separators, bidi controls) escaped as ``\\uXXXX``: still the same JSON,
    but no reader that splits lines on them (``str.splitlines``) sees two events."""
    return _CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# The values a log record carries beside its message (``extra=``): provider text too.
_EXTRA_TEXT = ("recording_id", "provider", "status")


class RedactSecrets(logging.Filter):
    """Removes every form of the run's secrets from a record: its message, the provider
    values it carries, and its traceback (formatted here, once, so both formatters print
    the redacted text)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redactor:
            return True
        record.msg, record.args = self.redactor(record.getMessage()), None
        for key in _EXTRA_TEXT:
            value = getattr(record, key, None)
            if isinstance(value, str):
                setattr(record, key, self.redactor(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True
