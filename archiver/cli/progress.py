"""Progress for long runs: a rich bar on a terminal, a log line every so often otherwise."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING

from archiver.runner import RunResult

if TYPE_CHECKING:
    from rich.progress import Progress

log = logging.getLogger("archiver.progress")


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def describe(result: RunResult, elapsed: float) -> str:
    c = result.counts
    rate = result.bytes_downloaded / elapsed if elapsed > 0 else 0.0
    return (
        f"listed {result.listed}, archived {c['archived']}, skipped {c['skipped']}, "
        f"pending {c['pending']}, failed {c['failed']}, unavailable {c['unavailable']}; "
        f"{_human(result.bytes_downloaded)} at {_human(rate)}/s"
    )


class RunProgress:
    """Call ``update(result)`` after each outcome; use as a context manager."""

    def __init__(self, result: RunResult, *, enabled: bool, interval: float = 30.0) -> None:
        self.result = result
        self.interval = interval
        self.start = time.monotonic()
        self._last_log = self.start
        self._bar: Progress | None = None
        if not enabled or not sys.stderr.isatty():
            return  # log lines only: rich is not even imported (a cron run, -q, a pipe)
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(file=sys.stderr)
        if console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._task = self._bar.add_task(result.command, total=None, detail="listing...")

    def __enter__(self) -> RunProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def update(self, result: RunResult) -> None:
        now = time.monotonic()
        if self._bar is not None:
            done = sum(result.counts.values())
            self._bar.update(
                self._task,
                completed=done,
                total=max(result.listed, done) or None,
                detail=describe(result, now - self.start),
            )
        elif now - self._last_log >= self.interval:
            self._last_log = now
            log.info("progress: %s", describe(result, now - self.start), extra={"run_id": result.run_id})

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
