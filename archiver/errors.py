"""The one error tree of archiver.

Everything foreign (httpx, botocore, mutagen, subprocess) is translated where it is raised,
so callers only ever see these::

    ArchiverError
    ├── ConfigError              bad settings or arguments; nothing was done (exit 2)
    │   └── CatalogDamaged       the catalog database is corrupt; ``archiver reindex`` rebuilds it
    ├── ListingIncomplete        a listing walk ended early; what it yielded is good, the
    │                            window is not finished (listed again next run)
    ├── ExportError              an export does not match its sidecars; abandoned (exit 1)
    ├── FatalError               the run cannot go on (exit 3)
    │   ├── AuthError            the provider refused our credentials (401/403)
    │   ├── ProviderUnavailable  the provider API stayed down after retries
    │   ├── ListingFailed        a listing answer cannot be used (4xx, not JSON, wrong shape)
    │   ├── CatalogUnavailable   the catalog cannot be written (disk full, read-only, I/O)
    │   ├── StorageUnavailable   the destination cannot be reached or written at all
    │   └── LockedError          another live run holds this catalog + destination + account
    └── RecordingError           this recording fails; the batch goes on (counted "failed")
        ├── TransientError       worth retrying (429, 5xx, timeouts, cut transfers)
        ├── NotFoundError        the provider has no such recording or media (on the
        │                        get-one: the recording is "unavailable", final)
        ├── NotAudioError        the body is not audio (error page, empty, unknown bytes)
        ├── UnsafeKeyError       provider data would escape the destination
        ├── StorageError         one object could not be written, read or listed
        ├── TranscodeError       one rendition could not be made (ffmpeg, tags, read-back)
        └── SidecarError         a sidecar in the archive is unreadable or unsafe (``kind``)

Behaviour is told by class: ``TransientError`` is retried by :mod:`archiver.retry`;
``RecordingError`` ends one recording; ``FatalError`` stops the run.

Every command exits with an :class:`ExitCode` (SPEC.md, "Exit codes"); an error that ends a
command is turned into one by :func:`exit_code_for`, the only such mapping.
"""

from __future__ import annotations

import enum
import errno


class ExitCode(enum.IntEnum):
    """The exit codes of every command (SPEC.md)."""

    OK = 0  # every selected recording is archived (verify: no finding)
    FAILED = 1  # some recordings failed (verify: a mismatch or a missing object)
    USAGE = 2  # usage or config error: nothing was done
    CANNOT_PROCEED = 3  # authentication refused, provider or storage unreachable
    INTERRUPTED = 130  # stopped by SIGINT (128 + 2), as a shell reports it
    TERMINATED = 143  # stopped by SIGTERM (128 + 15)

    @classmethod
    def for_signal(cls, signum: int) -> int:
        """128 + the signal, as a shell reports a process a signal ended."""
        return 128 + signum


class ArchiverError(Exception):
    """Root of every error archiver raises on purpose."""


class ConfigError(ArchiverError):
    """Settings or arguments are wrong. Exit code 2."""


class CatalogDamaged(ConfigError):
    """The catalog's SQLite file is damaged (or not a database at all). Nothing was done;
    ``archiver reindex`` moves it aside and rebuilds it from the sidecars."""


class FatalError(ArchiverError):
    """The run cannot proceed. Exit code 3."""


class AuthError(FatalError):
    """The provider refused the credentials."""


class ProviderUnavailable(FatalError):
    """The provider API could not be reached after retries."""


class ListingFailed(FatalError):
    """A listing request got an answer the client cannot use (a 4xx, a redirect, JSON of the
    wrong shape). The message names the window and the response."""


class ListingIncomplete(ArchiverError):
    """Raised by ``Provider.list_recordings`` after yielding what it could, when the walk had
    to stop early (a page with no new recording id, a page cap). Not fatal: the runner warns,
    leaves the window unfinished and goes on with the next one."""


class CatalogUnavailable(FatalError):
    """The catalog cannot be written (its disk is full or read-only, an I/O error): the run
    stops, since what it does could no longer be remembered."""


class StorageUnavailable(FatalError):
    """The destination cannot be used at all."""


class LockedError(FatalError):
    """Another live run holds the run lock (:mod:`archiver.locking`)."""


class ExportError(ArchiverError):
    """The export cannot be trusted (a file does not match its sidecar) and was abandoned."""


class RecordingError(ArchiverError):
    """One recording cannot be archived; the others go on.

    ``stage`` says where it failed (list, fetch, probe, store, ...), for the run report.
    """

    stage = "archive"

    def __init__(self, message: str, *, stage: str | None = None) -> None:
        super().__init__(message)
        if stage is not None:
            self.stage = stage


class TransientError(RecordingError):
    """A fault that may go away: retried with backoff.

    ``retry_after`` (seconds) is the server's own hint, when it gave one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, stage: str | None = None) -> None:
        super().__init__(message, stage=stage)
        self.retry_after = retry_after


class NotFoundError(RecordingError):
    """The provider has no such recording, or its media is gone."""


class NotAudioError(RecordingError):
    """The downloaded body is not audio."""

    stage = "fetch"


class UnsafeKeyError(RecordingError):
    """A storage key built from provider data is not safe."""

    stage = "plan"


class StorageError(RecordingError):
    """One object could not be written or read.

    ``destination_down`` marks a fault of the destination rather than of this recording (a
    full or read-only disk, S3 unreachable): it is not counted against the recording's
    attempts, and consecutive ones stop the run (exit 3)."""

    stage = "store"

    def __init__(self, message: str, *, stage: str | None = None, destination_down: bool = False) -> None:
        super().__init__(message, stage=stage)
        self.destination_down = destination_down


# A write that fails with one of these fails for every recording: the destination (or the
# staging disk) is down (full, read-only, gone), not this recording's fault.
DOWN_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.ENODEV, errno.ESTALE}
)


def write_error(what: str, exc: OSError, *, stage: str | None = None) -> StorageError:
    """Translate an OSError of a local write into a StorageError, marked ``destination_down``
    when its errno says the whole disk is unusable."""
    return StorageError(
        f"cannot write {what}: {exc.strerror or exc}", stage=stage, destination_down=exc.errno in DOWN_ERRNOS
    )


# A read that fails with one of these fails for every object: the destination cannot be
# read (no permission, a dead disk, a gone network file system), not this object damaged.
READ_DOWN_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EIO, errno.ENODEV, errno.ESTALE, errno.ENOTCONN}
)


def read_error(what: str, exc: OSError) -> StorageError:
    """Translate an OSError of a local read into a StorageError, marked ``destination_down``
    when its errno says the destination cannot be read at all."""
    return StorageError(
        f"cannot read {what}: {exc.strerror or exc}", destination_down=exc.errno in READ_DOWN_ERRNOS
    )


class TranscodeError(RecordingError):
    """One rendition could not be made."""

    stage = "transcode"


class SidecarError(RecordingError):
    """A ``.json`` in the archive that should be one of our sidecars cannot be used.

    ``kind`` is ``"unreadable"`` (not JSON, not an object, wrong shape) or ``"unsafe"`` (a key
    or id in it would reach outside the archive or an export); ``key`` is the sidecar's key and
    ``recording_id`` the id it names, when it names a usable one.
    """

    stage = "sidecar"

    def __init__(self, kind: str, key: str, detail: str, recording_id: str | None = None) -> None:
        super().__init__(f"{kind} sidecar {key}: {detail}")
        self.kind = kind
        self.key = key
        self.detail = detail
        self.recording_id = recording_id


def exit_code_for(exc: ArchiverError) -> ExitCode:
    """The exit code of a command that ``exc`` ended: the one map from the tree to codes.

    A ``RecordingError`` is counted against its recording inside a batch; one that escapes a
    command (a ``StorageError`` listing the destination in ``verify``) means the command could
    not go on, like a ``FatalError``."""
    if isinstance(exc, ConfigError):
        return ExitCode.USAGE
    if isinstance(exc, ExportError):
        return ExitCode.FAILED
    return ExitCode.CANNOT_PROCEED
