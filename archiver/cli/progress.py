"""Progress for long runs: a rich bar on a terminal, a log line every so often otherwise."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING

from archiver.runner import RunResult

if TYPE_CHECKING:
    from rich.console import Console
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


def brief(result: RunResult, elapsed: float) -> str:
    """:func:`describe` for a narrow terminal (80 columns): listed, failed, the rate."""
    rate = result.bytes_downloaded / elapsed if elapsed > 0 else 0.0
    return f"listed {result.listed}, {result.counts['failed']} failed, {_human(rate)}/s"


# Below this many columns the bar shows :func:`brief`, not :func:`describe`.
WIDE = 150


class RunProgress:
    """Call ``update(result)`` after each outcome; use as a context manager.

    ``total``: how many recordings the run will take, when that is known before it starts (a
    ``fetch`` of named ids); then the bar has an end and an ETA. A listing's length is known
    only once it is over, so a backfill's bar counts without one."""

    def __init__(
        self,
        result: RunResult,
        *,
        enabled: bool,
        interval: float = 30.0,
        total: int | None = None,
        console: Console | None = None,
    ) -> None:
        self.result = result
        self.interval = interval
        self.total = total
        self.start = time.monotonic()
        self._last_log = self.start
        self._bar: Progress | None = None
        self._wide = False
        if not enabled or (console is None and not sys.stderr.isatty()):
            return  # log lines only: rich is not even imported (a cron run, -q, a pipe)
        # rich is imported for a run on a terminal, not for `archiver --help` or completion
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = console or Console(file=sys.stderr)
        self._wide = console.width >= WIDE
        if console.is_terminal:
            columns: list[ProgressColumn | str] = [
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=30 if self._wide else 12),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
            ]
            if total is not None:
                columns += ["ETA", TimeRemainingColumn()]
            self._bar = Progress(*columns, console=console, transient=True)
            self._task = self._bar.add_task(result.command, total=total, detail="listing...")

    def __enter__(self) -> RunProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def update(self, result: RunResult) -> None:
        now = time.monotonic()
        if self._bar is not None:
            done = sum(result.counts.values())
            text = describe if self._wide else brief
            self._bar.update(
                self._task,
                completed=done,
                total=max(self.total, done) if self.total is not None else None,
                detail=text(result, now - self.start),
            )
        elif now - self._last_log >= self.interval:
            self._last_log = now
            log.info("progress: %s", describe(result, now - self.start), extra={"run_id": result.run_id})

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
