"""The catalog: a SQLite index of runs, recordings, finished backfill windows and watermarks.

It is an index, not the truth: the sidecars in storage are. Losing it costs time (``reindex``
or one ``exists`` check per recording), never data. WAL mode, one connection guarded by a
lock, so worker threads can record outcomes safely. The schema is versioned through
``PRAGMA user_version`` and migrated forward on open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archiver.errors import ArchiverError, CatalogDamaged, CatalogUnavailable, ConfigError
from archiver.timeutil import parse_provider_time

log = logging.getLogger(__name__)

MIGRATIONS: Sequence[str] = (
    # 1: the first schema
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, command TEXT NOT NULL, provider TEXT NOT NULL,
        account TEXT NOT NULL, dest TEXT NOT NULL, started_at TEXT NOT NULL,
        finished_at TEXT, exit_code INTEGER, report TEXT
    );
    CREATE TABLE recordings (
        dest TEXT NOT NULL, provider TEXT NOT NULL, account TEXT NOT NULL,
        recording_id TEXT NOT NULL, state TEXT NOT NULL, started_at TEXT,
        sidecar_key TEXT, sha256 TEXT, bytes INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT, last_stage TEXT, updated_at TEXT NOT NULL,
        PRIMARY KEY (dest, provider, account, recording_id)
    );
    CREATE INDEX recordings_state ON recordings (dest, provider, account, state);
    CREATE TABLE windows (
        dest TEXT NOT NULL, provider TEXT NOT NULL, account TEXT NOT NULL,
        since TEXT NOT NULL, until TEXT NOT NULL, finished_at TEXT NOT NULL,
        PRIMARY KEY (dest, provider, account, since, until)
    );
    CREATE TABLE watermarks (
        dest TEXT NOT NULL, provider TEXT NOT NULL, account TEXT NOT NULL,
        watermark TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (dest, provider, account)
    );
    """,
    # 2: deletions at the provider, each after a verified copy
    """
    CREATE TABLE deletions (
        dest TEXT NOT NULL, provider TEXT NOT NULL, account TEXT NOT NULL,
        recording_id TEXT NOT NULL, run_id TEXT NOT NULL, deleted_at TEXT NOT NULL,
        verified_sha256 TEXT NOT NULL, result TEXT NOT NULL,
        PRIMARY KEY (dest, provider, account, recording_id)
    );
    """,
    # 3: "unavailable" (issue 9): what older versions remembered as failed for a final reason
    # (the provider marked it error, or its get-one answered 404) is final, so a catalog from
    # before stops retrying and reporting those on every run. Media 404s (stage fetch) stay.
    """
    UPDATE recordings SET state = 'unavailable'
    WHERE state = 'failed' AND (
        (last_stage = 'provider' AND last_error LIKE 'the provider marked the recording as %')
        OR (last_stage = 'get' AND last_error LIKE '%: HTTP 404 (%')
    );
    """,
    # 4: when each archived file was last verified, against which SHA-256, and what was found
    # (sampled verify re-reads the least recently verified first); the custody chain's head
    # as this catalog last saw it (a truncated or rewritten end of the chain shows against it)
    """
    CREATE TABLE verifications (
        dest TEXT NOT NULL, key TEXT NOT NULL, sha256 TEXT NOT NULL,
        verified_at TEXT NOT NULL, result TEXT NOT NULL,
        PRIMARY KEY (dest, key)
    );
    CREATE TABLE custody_anchors (
        dest TEXT PRIMARY KEY, seq INTEGER NOT NULL, sha256 TEXT NOT NULL, seen_at TEXT NOT NULL
    );
    """,
    # 5: recordings kept in their primary key's order (WITHOUT ROWID): a lookup by id is one
    # B-tree search, not an index search then a table search (issue 11: at 100,000 rows a
    # lookup took 2x its time at 1,000; now 1.25x), and the file is 15 % smaller.
    """
    CREATE TABLE recordings_by_key (
        dest TEXT NOT NULL, provider TEXT NOT NULL, account TEXT NOT NULL,
        recording_id TEXT NOT NULL, state TEXT NOT NULL, started_at TEXT,
        sidecar_key TEXT, sha256 TEXT, bytes INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT, last_stage TEXT, updated_at TEXT NOT NULL,
        PRIMARY KEY (dest, provider, account, recording_id)
    ) WITHOUT ROWID;
    INSERT INTO recordings_by_key
        SELECT dest, provider, account, recording_id, state, started_at, sidecar_key, sha256,
               bytes, attempts, last_error, last_stage, updated_at
        FROM recordings;
    DROP TABLE recordings;
    ALTER TABLE recordings_by_key RENAME TO recordings;
    CREATE INDEX recordings_state ON recordings (dest, provider, account, state);
    """,
)


_ARCHIVED_SQL = (
    "INSERT INTO recordings (dest, provider, account, recording_id, state, started_at, "
    "sidecar_key, sha256, bytes, attempts, last_error, last_stage, updated_at) "
    "VALUES (?,?,?,?, 'archived', ?,?,?,?, 0, NULL, NULL, ?) "
    "ON CONFLICT (dest, provider, account, recording_id) DO UPDATE SET state='archived', "
    "started_at=excluded.started_at, sidecar_key=excluded.sidecar_key, "
    "sha256=excluded.sha256, bytes=excluded.bytes, last_error=NULL, last_stage=NULL, "
    "updated_at=excluded.updated_at"
)
_WINDOW_SQL = "INSERT OR REPLACE INTO windows VALUES (?,?,?,?,?,?)"
# SQLite's primary result codes for "the file is damaged" and "the file is not a database".
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
# The catalog's disk or file refuses writes: what a run does could no longer be remembered.
_UNWRITABLE = (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY)


def damaged_message(path: str, detail: str) -> str:
    """What a user reads when the catalog is damaged: the file, and the command that fixes it."""
    return (
        f"catalog {path} is damaged ({detail}); nothing was done. It is only an index: run "
        f"`archiver reindex --dest URL --catalog {path}` to move it aside and rebuild it from the sidecars"
    )


def translate(exc: sqlite3.Error, path: str) -> ConfigError | CatalogUnavailable:
    """The archiver error for a SQLite failure on the catalog at ``path``: CatalogDamaged for
    corruption (reindex can fix that), CatalogUnavailable (the run stops, exit 3) when its disk
    is full or read-only, ConfigError for the rest."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _DAMAGED:
        return CatalogDamaged(damaged_message(path, str(exc)))
    if code is not None and code & 0xFF in _UNWRITABLE:
        return CatalogUnavailable(f"catalog {path} cannot be written: {exc}")
    return ConfigError(f"catalog {path} cannot be used: {exc}")


def default_path(env: Mapping[str, str]) -> str:
    """``$ARCHIVER_CATALOG``, else ``$XDG_STATE_HOME/archiver/catalog.db``."""
    if env.get("ARCHIVER_CATALOG"):
        return env["ARCHIVER_CATALOG"]
    state = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "archiver", "catalog.db")


@dataclass(frozen=True)
class Scope:
    """Which archive a question is about: one provider account into one destination."""

    dest: str
    provider: str
    account: str

    def key(self) -> tuple[str, str, str]:
        return (self.dest, self.provider, self.account)


@dataclass(frozen=True)
class Verified:
    """The last verification of one archived file: the SHA-256 it was checked against (its
    sidecar's), when, and the result (``ok``, ``altered``, ``missing``, ``unreadable``...)."""

    sha256: str
    verified_at: datetime
    result: str


@dataclass(frozen=True)
class Known:
    """What the catalog remembers of one recording. ``state``: ``archived`` (its sidecar
    exists), ``pending`` or ``failed`` (retried by id; failed ones up to max_failures), or
    ``unavailable`` (final: the provider has no such recording or marked it error; never
    retried, and not news on later runs)."""

    recording_id: str
    state: str
    attempts: int
    last_error: str | None


def _ts(value: datetime | None) -> str | None:
    """Fixed-width UTC text, so SQL string order is time order."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _now() -> str:
    return _ts(datetime.now(UTC)) or ""


class Catalog:
    """Thread-safe access to the catalog database.

    "Archived" rows are written in batches (one transaction per :attr:`BATCH_ROWS` rows, or
    per :attr:`BATCH_SECONDS`): before a batch commits, ``barrier`` runs (the destination's
    :func:`~archiver.storage.base.make_durable`), so the catalog never says "archived" of a
    file whose name is not yet durable. Finished windows wait in the same batch (committed
    after its rows, in its transaction: a window is finished only after its recordings). Any
    other statement but a lookup by id first commits the rows waiting, so order is kept;
    ``get`` sees them already, without committing them. Rows waiting when the process dies
    are lost: the next run finds those sidecars by one ``exists`` each (and lists such a
    window again), as the catalog is only an index."""

    BATCH_ROWS = 64
    BATCH_SECONDS = 1.0

    def __init__(
        self,
        path: str,
        *,
        redact: Callable[[str], str] | None = None,
        barrier: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self.barrier = barrier
        self._pending: dict[tuple[str, str, str, str], tuple[Any, ...]] = {}
        # Finished windows wait with them, committed in the same transaction: a window is
        # never finished before the rows of its recordings, and a night of 1-day windows
        # costs one transaction per batch, not one per window.
        self._pending_windows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._pending_since = 0.0
        # Error text and reports come from providers: stored only redacted (defence in depth).
        self._redact = redact or (lambda text: text)
        if path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the catalog folder for {path}: {exc}") from None
            # A new catalog is its owner's alone, whatever the umask: it names recordings,
            # calls and their errors (SQLite gives its -wal and -shm the same mode).
            with contextlib.suppress(OSError):  # there already; or the folder refuses: said below
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise translate(exc, path) from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # A valid header over damaged pages opens fine and fails at some later query, maybe
            # in a worker mid-run. quick_check reads every page once (0.4 s for a million
            # recordings) so damage stops the command here, before anything is done.
            problems = [row[0] for row in self._db.execute("PRAGMA quick_check(3)").fetchall()]
            if problems != ["ok"]:
                raise CatalogDamaged(damaged_message(path, "; ".join(map(str, problems))))
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise translate(exc, path) from None
        except ArchiverError:
            self._db.close()
            raise
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one batch commits at a time

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise ConfigError(
                f"catalog {self.path} has schema {version}, newer than this archiver knows "
                f"({len(MIGRATIONS)}): upgrade archiver"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self._db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        try:
            self.settle()
        finally:
            self._db.close()

    def settle(self) -> None:
        """:meth:`flush`, at the end of a command: a failure is logged, not raised (what the
        command did is reported already; the next run finds those sidecars by ``exists``)."""
        try:
            self.flush()
        except ArchiverError as exc:
            log.warning(
                "catalog %s: %d archived recording(s) not recorded: %s", self.path, len(self._pending), exc
            )

    def flush(self) -> None:
        """Commit the "archived" rows waiting, after the barrier (which runs without the
        catalog's lock: other threads go on reading and adding rows meanwhile)."""
        with self._flushing:
            with self._lock:
                rows = dict(self._pending)
                windows = dict(self._pending_windows)
            if not rows and not windows:
                return
            if self.barrier is not None and rows:
                self.barrier()  # raises (a StorageError): the rows stay waiting, nothing claimed
            with self._lock:
                self._commit(list(rows.values()), list(windows.values()))
                for waiting, done in ((self._pending, rows), (self._pending_windows, windows)):
                    for key, row in done.items():
                        if waiting.get(key) is row:
                            del waiting[key]

    def _commit(self, rows: list[tuple[Any, ...]], windows: list[tuple[Any, ...]]) -> None:
        # with self._lock held; the windows after the rows, in one transaction
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(_ARCHIVED_SQL, rows)
            self._db.executemany(_WINDOW_SQL, windows)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise translate(exc, self.path) from None

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.flush()  # rows waiting before this statement are committed before it
        return self._read(sql, args)

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """``sql`` without committing the rows waiting first: for a read whose answer they
        cannot change (a lookup of one id that is not among them)."""
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from None

    # --- recordings -------------------------------------------------------------------------

    def get(self, scope: Scope, recording_id: str) -> Known | None:
        """What the catalog knows of one recording, the rows waiting included. Reads alone:
        the driver asks this of every listed recording, and committing the batch (its
        barrier fsyncs folders) before each lookup would make every batch a few rows."""
        with self._lock:
            if (*scope.key(), recording_id) in self._pending:
                return Known(recording_id, "archived", 0, None)
        rows = self._read(
            "SELECT recording_id, state, attempts, last_error FROM recordings "
            "WHERE dest=? AND provider=? AND account=? AND recording_id=?",
            (*scope.key(), recording_id),
        )
        return Known(*rows[0]) if rows else None

    def mark_archived(
        self,
        scope: Scope,
        recording_id: str,
        *,
        sidecar_key: str,
        sha256: str | None,
        size: int | None,
        started_at: datetime | str | None,
    ) -> None:
        """Remember an archived recording (in the next batch, see the class)."""
        started = _ts(started_at) if isinstance(started_at, datetime) else started_at
        key = (*scope.key(), recording_id)
        with self._lock:
            if not self._pending and not self._pending_windows:
                self._pending_since = time.monotonic()
            self._pending[key] = (*key, started, sidecar_key, sha256, size, _now())
            due = (
                len(self._pending) >= self.BATCH_ROWS
                or time.monotonic() - self._pending_since >= self.BATCH_SECONDS
            )
        if due:
            self.flush()

    def mark_unsettled(
        self,
        scope: Scope,
        recording_id: str,
        state: str,
        stage: str | None,
        error: str | None,
        started_at: datetime | None = None,
        *,
        count: bool = True,
    ) -> int:
        """Remember a pending, failed or unavailable recording (never over an archived one);
        returns its failed-attempt count. A failure with ``count=False`` (the destination's
        fault, not the recording's) adds no attempt."""
        bump = 1 if state == "failed" and count else 0
        error = self._redact(error) if error else error
        self._exec(
            "INSERT INTO recordings (dest, provider, account, recording_id, state, started_at, "
            "attempts, last_error, last_stage, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (dest, provider, account, recording_id) DO UPDATE SET "
            "state=excluded.state, attempts=recordings.attempts + ?, last_error=excluded.last_error, "
            "last_stage=excluded.last_stage, updated_at=excluded.updated_at, "
            "started_at=COALESCE(excluded.started_at, recordings.started_at) "
            "WHERE recordings.state != 'archived'",
            (*scope.key(), recording_id, state, _ts(started_at), bump, error, stage, _now(), bump),
        )
        known = self.get(scope, recording_id)
        return known.attempts if known else 0

    def unsettled(
        self,
        scope: Scope,
        max_attempts: int,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[str]:
        """Pending recordings, and failed ones still under the attempt limit, optionally only
        those that started in ``[since, until)`` (or whose start is unknown): retried by id."""
        sql = (
            "SELECT recording_id FROM recordings WHERE dest=? AND provider=? AND account=? AND "
            "(state='pending' OR (state='failed' AND attempts < ?))"
        )
        args: list[Any] = [*scope.key(), max_attempts]
        if since is not None and until is not None:
            sql += " AND (started_at IS NULL OR (started_at >= ? AND started_at < ?))"
            args += [_ts(since), _ts(until)]
        return [r[0] for r in self._exec(sql + " ORDER BY recording_id", args)]

    def given_up(
        self, scope: Scope, max_attempts: int, since: datetime | None = None, until: datetime | None = None
    ) -> list[Known]:
        """Failed recordings at the attempt limit, optionally only those that started in
        ``[since, until)`` (or whose start is unknown)."""
        sql = (
            "SELECT recording_id, state, attempts, last_error FROM recordings WHERE dest=? AND "
            "provider=? AND account=? AND state='failed' AND attempts >= ?"
        )
        args: list[Any] = [*scope.key(), max_attempts]
        if since is not None and until is not None:
            sql += " AND (started_at IS NULL OR (started_at >= ? AND started_at < ?))"
            args += [_ts(since), _ts(until)]
        return [Known(*r) for r in self._exec(sql + " ORDER BY recording_id", args)]

    def forget(self, scope: Scope, recording_ids: Sequence[str], *, archived: bool = False) -> list[Known]:
        """Drop what the catalog remembers of these ids in ``scope``; returns what was dropped.
        An archived recording's memory only with ``archived=True``."""
        gone: list[Known] = []
        for rid in dict.fromkeys(recording_ids):
            known = self.get(scope, rid)
            if known is None or (known.state == "archived" and not archived):
                continue
            self._exec(
                "DELETE FROM recordings WHERE dest=? AND provider=? AND account=? AND recording_id=?",
                (*scope.key(), rid),
            )
            gone.append(known)
        return gone

    def forget_dest(self, dest: str) -> None:
        """Before a reindex of ``dest``: drop what its sidecars will tell again (the archived
        recordings) and the finished windows, which were finished on the word of rows that may
        now be gone (a sidecar deleted by hand): the next backfill lists them again, skipping
        every archived recording. Remembered pending, failed and unavailable recordings stay
        (no sidecar knows of them), and so do watermarks and deletions."""
        self.flush()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM recordings WHERE dest=? AND state='archived'", (dest,))
                self._db.execute("DELETE FROM windows WHERE dest=?", (dest,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise translate(exc, self.path) from None

    # --- windows and watermarks ---------------------------------------------------------------

    def window_done(self, scope: Scope, since: datetime, until: datetime) -> bool:
        rows = self._exec(
            "SELECT 1 FROM windows WHERE dest=? AND provider=? AND account=? AND since=? AND until=?",
            (*scope.key(), _ts(since), _ts(until)),
        )
        return bool(rows)

    def finish_window(self, scope: Scope, since: datetime, until: datetime) -> None:
        """Remember a window as finished, with the batch of rows waiting (see the class)."""
        key = (*scope.key(), _ts(since), _ts(until))
        with self._lock:
            if not self._pending and not self._pending_windows:
                self._pending_since = time.monotonic()
            self._pending_windows[key] = (*key, _now())
            due = time.monotonic() - self._pending_since >= self.BATCH_SECONDS
        if due:
            self.flush()

    def watermark(self, scope: Scope) -> datetime | None:
        rows = self._exec(
            "SELECT watermark FROM watermarks WHERE dest=? AND provider=? AND account=?", scope.key()
        )
        return parse_provider_time(rows[0][0]) if rows else None

    def set_watermark(self, scope: Scope, value: datetime) -> None:
        self._exec("INSERT OR REPLACE INTO watermarks VALUES (?,?,?,?,?)", (*scope.key(), _ts(value), _now()))

    # --- deletions at the provider ---------------------------------------------------------

    def record_deletion(self, scope: Scope, recording_id: str, run_id: str, sha256: str, result: str) -> None:
        self._exec(
            "INSERT OR REPLACE INTO deletions VALUES (?,?,?,?,?,?,?,?)",
            (*scope.key(), recording_id, run_id, _now(), sha256, result),
        )

    def deleted(self, scope: Scope, recording_id: str) -> bool:
        rows = self._exec(
            "SELECT 1 FROM deletions WHERE dest=? AND provider=? AND account=? AND recording_id=?",
            (*scope.key(), recording_id),
        )
        return bool(rows)

    # --- runs ---------------------------------------------------------------------------------

    def start_run(self, run_id: str, command: str, scope: Scope, started_at: datetime) -> None:
        self._exec(
            "INSERT INTO runs (run_id, command, provider, account, dest, started_at) VALUES (?,?,?,?,?,?)",
            (run_id, command, scope.provider, scope.account, scope.dest, _ts(started_at)),
        )

    def finish_run(self, run_id: str, exit_code: int, report: Mapping[str, Any]) -> None:
        self._exec(
            "UPDATE runs SET finished_at=?, exit_code=?, report=? WHERE run_id=?",
            (_now(), exit_code, self._redact(json.dumps(report, sort_keys=True)), run_id),
        )

    def last_success(self, scope: Scope) -> datetime | None:
        rows = self._exec(
            "SELECT MAX(finished_at) FROM runs WHERE dest=? AND provider=? AND account=? AND exit_code=0",
            (scope.dest, scope.provider, scope.account),
        )
        return parse_provider_time(rows[0][0]) if rows and rows[0][0] else None

    def runs(self) -> Iterator[tuple[str, str, int | None]]:
        yield from self._exec("SELECT run_id, command, exit_code FROM runs ORDER BY started_at")

    # --- verifications and the custody chain's anchor -------------------------------------

    def verifications(self, dest: str) -> dict[str, Verified]:
        """The last verification of every file of ``dest`` this catalog has seen checked."""
        rows = self._exec("SELECT key, sha256, verified_at, result FROM verifications WHERE dest=?", (dest,))
        out: dict[str, Verified] = {}
        for key, sha, at, result in rows:
            when = parse_provider_time(at)
            if when is not None:
                out[key] = Verified(sha, when, result)
        return out

    def record_verifications(self, dest: str, checked: Sequence[tuple[str, str, str]], at: datetime) -> None:
        """Remember ``(key, sha256, result)`` of each file verified at ``at``, in one transaction."""
        when = _ts(at)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO verifications VALUES (?,?,?,?,?)",
                    [(dest, key, sha, when, result) for key, sha, result in checked],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise translate(exc, self.path) from None

    def custody_anchor(self, dest: str) -> tuple[int, str, datetime | None] | None:
        """The custody chain's latest event this catalog saw: (seq, SHA-256, when)."""
        rows = self._exec("SELECT seq, sha256, seen_at FROM custody_anchors WHERE dest=?", (dest,))
        return (int(rows[0][0]), str(rows[0][1]), parse_provider_time(rows[0][2])) if rows else None

    def set_custody_anchor(self, dest: str, seq: int, sha256: str) -> None:
        """Remember event ``seq`` (never moving back to an earlier one)."""
        self._exec(
            "INSERT INTO custody_anchors VALUES (?,?,?,?) ON CONFLICT (dest) DO UPDATE SET "
            "seq=excluded.seq, sha256=excluded.sha256, seen_at=excluded.seen_at "
            "WHERE excluded.seq >= custody_anchors.seq",
            (dest, seq, sha256, _now()),
        )
