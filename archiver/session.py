"""One session of work, from Settings: the provider client, the storage, the catalog, the
HTTP client and the encoders, opened together and closed together. The library's only place
that turns Settings into objects (the CLI's wiring and :mod:`archiver.api` both use it)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING

from archiver.catalog import Catalog, Scope, default_path
from archiver.config import Settings, environ
from archiver.errors import ConfigError
from archiver.locking import RunLock
from archiver.media.transcode import Transcoder, find_ffmpeg
from archiver.models import scope_prefix
from archiver.pipeline import Deps
from archiver.profiles import Profile, pick_profiles
from archiver.providers import PacerFactory, make_client, open_provider, pacing_folder_of
from archiver.retry import RetryPolicy
from archiver.sidecars import record_layout
from archiver.storage import S3Options, Storage, open_storage
from archiver.storage.base import make_durable
from archiver.timeutil import utcnow

if TYPE_CHECKING:  # httpx is imported when a client is made, not for `archiver --help`
    import httpx

    from archiver.providers.base import Provider

log = logging.getLogger("archiver")


def build_provider(
    settings: Settings, name: str, client: httpx.Client, pacer: PacerFactory | None = None
) -> Provider:
    """The named provider's client (:func:`archiver.providers.open_provider`), paced with the
    other processes that use a catalog in the same folder (or by ``pacer``)."""
    return open_provider(
        name,
        settings,
        client,
        policy=retry_policy(settings),
        pacing_folder=pacing_folder_of(catalog_path(settings)),
        pacer=pacer,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(max_attempts=settings.http.max_attempts, max_total=settings.http.max_retry_seconds)


def build_storage(settings: Settings) -> Storage:
    if not settings.archive.dest:
        raise ConfigError("no destination: pass --dest or set [archive] dest in the config file")
    s = settings.s3
    options = S3Options(
        storage_class=s.storage_class,
        sse=s.sse,
        sse_kms_key_id=s.sse_kms_key_id,
        multipart_threshold_mb=s.multipart_threshold_mb,
        part_size_mb=s.part_size_mb,
        max_concurrency=s.max_concurrency,
        object_lock_mode=s.object_lock_mode,
        legal_hold=s.legal_hold,
    )
    return open_storage(settings.archive.dest, options, pool_size=settings.archive.concurrency * 2)


def catalog_path(settings: Settings) -> str:
    return settings.archive.catalog or default_path(environ())


def open_catalog(settings: Settings) -> Catalog:
    return Catalog(catalog_path(settings), redact=settings.redactor())


def quick(settings: Settings) -> Settings:
    """The same settings with one attempt per request: a check should answer fast."""
    return dataclasses.replace(settings, http=dataclasses.replace(settings.http, max_attempts=2))


@contextlib.contextmanager
def archive_session(
    settings: Settings,
    provider_name: str,
    *,
    force: bool,
    dry_run: bool,
    profiles: tuple[str, ...] = (),
    keep_original: bool = True,
    shard: str = "",
) -> Iterator[Deps]:
    """Provider, storage, catalog, HTTP client and encoders for one run, closed afterwards.

    A real run takes the run lock, checks the destination and cleans what a run that died
    left behind; a dry run only reads, so it does none of that.
    """
    chosen = pick_profiles(profiles, settings.profiles)
    if not keep_original and not chosen:
        raise ConfigError(
            "--no-keep-original needs at least one --transcode PROFILE: nothing would be stored"
        )
    storage = build_storage(settings)
    client = make_client(
        timeout=settings.http.timeout_seconds, max_connections=settings.archive.concurrency * 2
    )
    catalog: Catalog | None = None
    # Encoding runs on its own bounded pool, beside (not inside) the download workers.
    workers = settings.transcode.workers or os.cpu_count() or 2
    encode_pool = ThreadPoolExecutor(workers, thread_name_prefix="encode") if chosen else None
    try:
        provider = build_provider(settings, provider_name, client)
        path = catalog_path(settings)
        # A dry run writes nothing: without a catalog yet, it plans from the sidecars alone.
        catalog = Catalog(
            path if not dry_run or os.path.exists(path) else ":memory:",
            redact=settings.redactor(),
            barrier=lambda: make_durable(storage),  # no "archived" before its files are durable
        )
        scope = Scope(storage.url, provider.name, provider.account)
        deps = make_deps(
            settings,
            provider,
            storage,
            client,
            catalog,
            force=force,
            profiles=chosen,
            keep_original=keep_original,
            encode_pool=encode_pool,
        )
        if dry_run:
            yield deps
            return
        with RunLock(catalog.path, scope.dest, scope.provider, scope.account, shard):
            storage.check()
            prefix = scope_prefix(settings.archive.layout, scope.provider, scope.account)
            # An unfinished multipart upload counts as abandoned only after a day: the run lock
            # lives beside this catalog, so another host, another catalog or a `transcode`
            # may be uploading under the same prefix right now (S3 cannot tell us).
            age = timedelta(hours=settings.s3.abandoned_upload_hours)
            cleaned = storage.recover(prefix, utcnow() - age)
            if cleaned:
                log.warning("cleaned up %d leftover(s) of an interrupted run", cleaned)
            # Before a recording is filed under it: selections by date trust only recorded layouts.
            record_layout(storage, settings.archive.layout)
            yield deps
            catalog.settle()  # while the run lock is held
    finally:
        if encode_pool is not None:
            encode_pool.shutdown(wait=True)
        client.close()
        storage.close()
        if catalog is not None:
            catalog.close()


def build_transcoder(settings: Settings) -> Transcoder:
    return Transcoder(find_ffmpeg(settings.transcode.ffmpeg))


def make_deps(
    settings: Settings,
    provider: Provider,
    storage: Storage,
    client: httpx.Client,
    catalog: Catalog,
    *,
    force: bool,
    profiles: tuple[Profile, ...],
    keep_original: bool,
    encode_pool: Executor | None,
) -> Deps:
    """The pipeline's Deps from Settings and the opened parts: the one place they are put
    together (a run here, a cluster worker's session)."""
    return Deps(
        provider=provider,
        storage=storage,
        client=client,
        retry=retry_policy(settings),
        layout=settings.archive.layout,
        catalog=catalog,
        scope=Scope(storage.url, provider.name, provider.account),
        force=force,
        max_failures=settings.archive.max_failures,
        profiles=profiles,
        keep_original=keep_original,
        transcoder=build_transcoder(settings) if profiles else None,
        encode_pool=encode_pool,
        lock_mode=settings.s3.object_lock_mode,
        retain_days=settings.s3.retain_days,
        legal_hold=settings.s3.legal_hold,
        download_deadline=settings.http.download_deadline_seconds,
        redact=settings.redactor(),
    )
