"""``archiver doctor``: check every part a run depends on, and say how to fix what is wrong."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from archiver.catalog import MIGRATIONS, Catalog
from archiver.config import env_file_slips
from archiver.errors import ArchiverError, AuthError, CatalogDamaged, ConfigError
from archiver.providers.base import Provider
from archiver.storage import Storage
from archiver.storage.local import LocalStorage

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    message: str
    fix: str | None = None

    def lines(self) -> list[str]:
        """The finding, then how to fix it: one printed line each."""
        head = f"{self.level.upper():4}  {self.check}: {self.message}"
        return [head, f"      fix: {self.fix}"] if self.fix else [head]

    def line(self) -> str:
        return "\n".join(self.lines())


def check_provider(name: str, build: Callable[[], Provider]) -> Finding:
    check = f"provider {name}"
    try:
        provider = build()
        provider.check_credentials()
    except ConfigError as exc:
        return Finding(
            "fail", check, str(exc), f"export the {name.upper()}_* variables or add [{name}] to the config"
        )
    except AuthError as exc:
        return Finding(
            "fail", check, str(exc), "check the credentials (and the account id) with the provider"
        )
    except ArchiverError as exc:
        return Finding(
            "fail", check, str(exc), f"check network access to the API (or {name.upper()}_BASE_URL)"
        )
    return Finding("ok", check, f"credentials accepted for account {provider.account}")


def check_environment(env: Mapping[str, str]) -> Iterator[Finding]:
    """A quoting slip in the credentials file (:func:`archiver.config.env_file_slips`)."""
    for var, wrong in env_file_slips(env):
        yield Finding(
            "warn",
            "environment",
            f"{var} {wrong}",
            "one KEY=value a line, no quotes or spaces (contrib/credentials.env.example)",
        )


def check_ffmpeg(ffmpeg: str) -> Finding:
    try:
        proc = subprocess.run(
            [ffmpeg, "-hide_banner", "-encoders"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding(
            "warn",
            "ffmpeg",
            f"cannot run {ffmpeg!r}: {exc}",
            "pip install imageio-ffmpeg, or set ARCHIVER_FFMPEG (only --transcode needs it)",
        )
    missing = [e for e in ("libmp3lame", "libopus", "flac", "pcm_s16le") if e not in proc.stdout]
    if proc.returncode != 0 or missing:
        return Finding(
            "warn",
            "ffmpeg",
            f"{ffmpeg} lacks encoders: {', '.join(missing) or proc.stderr[-200:]}",
            "use the ffmpeg that imageio-ffmpeg ships (unset ARCHIVER_FFMPEG)",
        )
    return Finding("ok", "ffmpeg", f"{ffmpeg} has the encoders of every built-in profile")


def check_storage(storage: Storage) -> Iterator[Finding]:
    check = f"destination {storage.url}"
    if isinstance(storage, LocalStorage) and not storage.root.is_dir():  # not there yet: no check makes it
        yield _absent_folder(check, str(storage.root))
        return
    try:
        storage.check()
        key = f".archiver-doctor-{uuid.uuid4().hex}.probe"
        body = os.urandom(64)
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(body)
            tmp.flush()
            storage.put_file(key, tmp.name, content_type="application/octet-stream", sha256="")
        with storage.open_read(key) as fh:
            back = fh.read()
        storage.delete(key)
        if back != body:
            yield Finding("fail", check, "a probe object read back differently", "check the storage")
            return
    except ArchiverError as exc:
        yield Finding("fail", check, str(exc), "check the path / bucket, its permissions and credentials")
        return
    yield Finding("ok", check, "write, read back and delete of a probe object worked")
    facts_of = getattr(storage, "bucket_facts", None)
    if facts_of is None:
        return
    facts = facts_of()
    if not facts.get("encryption"):
        yield Finding(
            "warn",
            f"{check} encryption",
            "no default encryption reported",
            "enable default bucket encryption, or pass --sse AES256|aws:kms",
        )
    else:
        yield Finding("ok", f"{check} encryption", f"default encryption {facts['encryption']}")
    if facts.get("public_access_block"):
        yield Finding("ok", f"{check} public access", "public access is blocked")
    else:
        yield Finding(
            "warn",
            f"{check} public access",
            "the bucket does not block all public access",
            "turn on S3 Block Public Access for the bucket: recordings are personal data",
        )
    lock = facts.get("object_lock") == "Enabled"
    yield Finding(
        "ok" if lock else "warn",
        f"{check} object lock",
        "Object Lock enabled" if lock else "Object Lock not enabled: --object-lock-mode cannot be used",
        None if lock else "for WORM retention (SEC 17a-4, MiFID II) use a bucket created with Object Lock",
    )
    yield Finding(
        "ok" if facts.get("versioning") == "Enabled" else "warn",
        f"{check} versioning",
        f"versioning {facts.get('versioning') or 'off'}",
        None if facts.get("versioning") == "Enabled" else "enable versioning to keep overwritten objects",
    )


def _absent_folder(check: str, root: str) -> Finding:
    """A local destination that does not exist: the first run creates it, doctor does not (a
    typo would leave a stray folder); it says whether that run could, and what it would make."""
    parent = root
    while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        return Finding(
            "fail",
            check,
            f"{root} does not exist, and {parent} is not writable: a run cannot create it",
            "check the path, or create the folder for the user archiver runs as",
        )
    return Finding(
        "warn",
        check,
        f"{root} does not exist yet: the first run creates it (in {parent})",
        "check the path: a typo would archive into a new folder",
    )


def check_catalog(path: str) -> Finding:
    """The catalog opens and is sound; one that does not exist yet is only looked for (a check
    must not create the file or folder it checks: a typo'd path would become a new catalog)."""
    if path != ":memory:" and not os.path.exists(path):
        return _future_catalog(path)
    try:
        catalog = Catalog(path)
    except CatalogDamaged as exc:
        return Finding("fail", "catalog", str(exc), "run `archiver reindex` to move it aside and rebuild it")
    except ConfigError as exc:
        return Finding("fail", "catalog", str(exc), "point --catalog / ARCHIVER_CATALOG at a writable file")
    try:
        version = catalog.schema_version
        runs = sum(1 for _ in catalog.runs())
    finally:
        catalog.close()
    return Finding("ok", "catalog", f"{path}: schema {version}/{len(MIGRATIONS)}, {runs} run(s) recorded")


def check_pacing(folder: str) -> Finding:
    """Where requests are paced across processes: the catalog's folder (never created here)."""
    if os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK):
        return Finding(
            "ok",
            "pacing",
            f"requests per provider account are paced across every run whose catalog is in {folder} "
            "(.archiver-pace-* files); runs on other folders or machines do not share the rate",
        )
    return Finding(
        "warn",
        "pacing",
        f"{folder} is missing or not writable: each run paces alone, and two runs on one account "
        "together exceed its rate",
        "let the first run create the catalog there, or point --catalog at a writable folder",
    )


def _future_catalog(path: str) -> Finding:
    """A catalog the first run will create: can it? (the nearest folder that exists must be
    writable, since the run makes the rest)."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK):
        return Finding("ok", "catalog", f"{path} does not exist yet: the first run creates it")
    return Finding(
        "fail",
        "catalog",
        f"{path} does not exist and cannot be created ({folder} is not a writable folder)",
        "point --catalog / ARCHIVER_CATALOG at a writable place",
    )


def versions() -> dict[str, str]:
    """The archiver's, Python's and the libraries' versions in this process."""
    import platform
    from importlib import metadata

    from archiver import __version__

    found = {"archiver": __version__, "python": platform.python_version()}
    for dist in ("httpx", "boto3", "mutagen", "distributed"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "absent"
    return found


def check_workers(facts: dict[str, dict[str, object]], driver: dict[str, str]) -> Iterator[Finding]:
    """One finding per Dask worker from what it reported (:func:`archiver.cluster.worker_facts`):
    its problems (credentials, ffmpeg, destination) and versions that differ from the driver's."""
    if not facts:
        yield Finding("fail", "dask workers", "the scheduler has no workers", "start `dask worker SCHEDULER`")
        return
    for address, seen in sorted(facts.items()):
        reported = seen.get("problems") or []
        theirs = seen.get("versions") or {}
        assert isinstance(reported, list) and isinstance(theirs, dict)
        problems = [str(p) for p in reported]
        differ = [f"{k} {theirs.get(k, '?')} (driver {v})" for k, v in driver.items() if theirs.get(k) != v]
        if differ:
            problems.append("versions differ: " + ", ".join(differ))
        if problems:
            fix = (
                "set the credentials in the worker's environment or ARCHIVER_CONFIG file; "
                "install the same archiver[dask] as the driver"
            )
            yield Finding("fail", f"dask worker {address}", "; ".join(problems), fix)
        else:
            yield Finding("ok", f"dask worker {address}", "credentials, ffmpeg, destination and versions")
