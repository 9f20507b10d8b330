"""Ctrl-C and SIGTERM during a run: the first stops it after the recordings in flight, the
second at once.

The first signal only sets an Event, which the runner's feeding loop checks before it takes
the next recording: recordings being processed finish (their sidecars are written or not:
never half), queued ones are handed back, and the command then writes its summary, report,
metrics and catalog run row as after any run, and exits 128 + the signal (130, 143).

The second signal exits on the spot (``os._exit``), as a kill would: every write the archiver
makes is a temp file in the run's staging folder renamed into place, a checksummed S3 upload
completed in one call, or a SQLite transaction, so nothing half-written is left at a final
key, and the next run reaps the staging folder (its flock died with us) and aborts leftover
multipart uploads. No report is written then: the user asked for no more work.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

from archiver.cli.output import echo
from archiver.errors import ExitCode

log = logging.getLogger("archiver.run")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """``with StopOnSignal() as stop:`` installs the handlers (main thread only: signals are
    delivered there) and restores the previous ones on exit. ``stop.event`` is the runner's
    stop flag; ``stop.signum`` the first signal received, if any."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            self.event.set()
            log.warning("%s: stopping after the recordings in flight (send it again to stop at once)", name)
            return
        echo(
            f"{name} again: stopping now; the recordings in flight are abandoned, nothing is "
            "half-written, and the next run cleans up and archives them",
            err=True,
        )
        if sys.stderr.isatty():
            sys.stderr.write("\x1b[?25h")  # the progress bar hides the cursor
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(ExitCode.for_signal(signum))
