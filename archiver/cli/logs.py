"""Logging set-up: text or JSON lines on stderr, secrets redacted from every record."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

REDACTED = "***"


class RedactSecrets(logging.Filter):
    """Replaces any known secret value in a record's message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per event, with the run and recording ids when known."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("run_id", "provider", "recording_id", "status", "bytes"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


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


def setup_logging(verbosity: int, quiet: bool, fmt: str, secrets: Iterable[str] = ()) -> None:
    """-q: errors only; default: warnings and run progress; -v: each recording; -vv: HTTP."""
    level = logging.ERROR if quiet else (logging.INFO if verbosity <= 1 else logging.DEBUG)
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    )
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    per_recording = logging.INFO if verbosity >= 1 else logging.WARNING
    logging.getLogger("archiver.runner").setLevel(max(level, per_recording))
    quiet_libs = logging.DEBUG if verbosity >= 3 else logging.WARNING
    for name in ("httpx", "httpcore", "botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(name).setLevel(quiet_libs)
