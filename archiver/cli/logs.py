"""Logging set-up: text or JSON lines on stderr, secrets redacted from every record."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from archiver.redact import Redactor, RedactSecrets, escape_controls, json_line

# Marks each line of a traceback as part of the record above it: no line of one can pass for
# a record of its own, whatever an exception's message holds.
TRACE_PREFIX = "  | "


class TextFormatter(logging.Formatter):
    """``YYYY-MM-DDTHH:MM:SSZ LEVEL message``, one line per record. The date is there and
    in UTC, as in JSON logs and reports: a line kept in a log file must say which night it is
    from. Control characters in the message are escaped (a provider id with a newline or ESC
    cannot forge a line or drive the terminal), and a traceback's lines are prefixed and
    escaped the same way."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        exc_info, exc_text, stack = record.exc_info, record.exc_text, record.stack_info
        if exc_info and not exc_text:
            exc_text = self.formatException(exc_info)
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = exc_info, exc_text, stack
        for extra in (exc_text, stack):
            if extra:
                line += "".join(f"\n{TRACE_PREFIX}{escape_controls(part)}" for part in extra.split("\n"))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per event, with the run and recording ids when known."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("run_id", "provider", "recording_id", "status", "bytes", "event", "counts", "exit_code"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info or record.exc_text:
            doc["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json_line(json.dumps(doc, ensure_ascii=False))


class RunContext(logging.Filter):
    """Stamps every record with the run id (and provider), for JSON logs."""

    def __init__(self, run_id: str, provider: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.provider = provider

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = self.run_id
        if not hasattr(record, "provider"):
            record.provider = self.provider
        return True


def bind_run(run_id: str, provider: str) -> None:
    """Attach the run's id to every log line from now on."""
    for handler in logging.getLogger().handlers:
        for f in [f for f in handler.filters if isinstance(f, RunContext)]:
            handler.removeFilter(f)
        handler.addFilter(RunContext(run_id, provider))


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time, so log lines go through the progress
    bar's redirection (printed above the bar, not across it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def setup_logging(verbosity: int, quiet: bool, fmt: str, redactor: Redactor | None = None) -> None:
    """-q: errors only; default: warnings and run progress; -v: each recording; -vv: HTTP."""
    level = logging.ERROR if quiet else (logging.INFO if verbosity <= 1 else logging.DEBUG)
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactSecrets(redactor or Redactor()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    per_recording = logging.INFO if verbosity >= 1 else logging.WARNING
    logging.getLogger("archiver.runner").setLevel(max(level, per_recording))
    quiet_libs = logging.DEBUG if verbosity >= 3 else logging.WARNING
    for name in ("httpx", "httpcore", "botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(name).setLevel(quiet_libs)
