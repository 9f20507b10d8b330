"""Options several commands share, and the error -> exit code mapping."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from archiver.cli.output import echo
from archiver.errors import ConfigError, FatalError
from archiver.selection import Selection
from archiver.timeutil import parse_when, utcnow

F = TypeVar("F", bound=Callable[..., Any])


def archive_options(fn: F) -> F:
    """The options of ``backfill`` and ``fetch`` (and later ``run``)."""
    options = [
        click.option(
            "--provider",
            type=click.Choice(["catapult", "plivo"]),
            required=True,
            help="Which provider to archive from.",
        ),
        click.option("--dest", help="Destination: a folder, file:///path or s3://bucket/prefix."),
        click.option(
            "--layout",
            help="Key template (see README); default "
            "{provider}/{account}/{started:%Y}/{started:%m}/{started:%d}/{recording_id}.{ext}.",
        ),
        click.option("--concurrency", type=click.IntRange(1, 256), help="Parallel recordings (default 8)."),
        click.option("--dry-run", is_flag=True, help="List and plan; write nothing."),
        click.option("--limit", type=click.IntRange(1), help="Stop after this many recordings."),
        click.option("--force", is_flag=True, help="Re-archive recordings already archived."),
        click.option(
            "--report",
            type=click.Path(dir_okay=False, writable=True),
            help="Write a JSON run report here ('-': stdout, and the summary line to stderr).",
        ),
        click.option(
            "--catalog",
            type=click.Path(dir_okay=False),
            help="Catalog database (default $ARCHIVER_CATALOG, else $XDG_STATE_HOME/archiver/catalog.db).",
        ),
        click.option(
            "--metrics-file",
            type=click.Path(dir_okay=False),
            help="Write Prometheus metrics here (node_exporter textfile collector).",
        ),
        click.option(
            "--transcode",
            "transcode_profiles",
            multiple=True,
            metavar="PROFILE",
            help="Also store a rendition (repeatable): mp3-mono-32k, opus-16k, flac, wav-pcm16-8k, "
            "or a [profiles.NAME] of the config.",
        ),
        click.option(
            "--keep-original/--no-keep-original",
            default=True,
            show_default=True,
            help="Store the provider's original too (its hash and size are in the sidecar either way).",
        ),
        click.option(
            "--transcode-workers", type=click.IntRange(1, 64), help="Parallel encodes (default: CPU count)."
        ),
        click.option(
            "--object-lock-mode",
            type=click.Choice(["GOVERNANCE", "COMPLIANCE"]),
            help="S3 Object Lock retention on every object (needs --retain-days).",
        ),
        click.option("--retain-days", type=click.IntRange(1), help="Retain until the call's start + N days."),
        click.option(
            "--legal-hold", is_flag=True, default=None, help="Put an S3 legal hold on every object."
        ),
        click.option(
            "--delete-after-archive",
            is_flag=True,
            help="Plivo: delete each recording at the provider once its stored copy is re-read and verified.",
        ),
        click.option(
            "--delete-older-than-days",
            type=click.IntRange(0),
            help="With --delete-after-archive: only recordings that started more than N days ago.",
        ),
        click.option("--storage-class", help="S3 storage class (STANDARD_IA, GLACIER_IR, ...)."),
        click.option("--sse", type=click.Choice(["AES256", "aws:kms"]), help="S3 server-side encryption."),
        click.option("--sse-kms-key-id", help="KMS key for --sse aws:kms."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def selection_options(fn: F) -> F:
    """``--since/--until/--provider/--call-id/--number``, collected into ``selection``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        now = utcnow()
        since, until = kwargs.pop("since"), kwargs.pop("until")
        try:
            kwargs["selection"] = Selection(
                since=parse_when(since, now=now) if since else None,
                until=parse_when(until, now=now) if until else None,
                provider=kwargs.pop("provider"),
                call_id=kwargs.pop("call_id"),
                number=kwargs.pop("number"),
            )
        except ConfigError as exc:
            echo(f"error: {exc}", err=True)
            raise SystemExit(2) from None
        return fn(*args, **kwargs)

    options = [
        click.option("--since", help="Recordings that started at or after this (YYYY-MM-DD, -7d...)."),
        click.option("--until", help="... and before this (exclusive)."),
        click.option("--provider", type=click.Choice(["catapult", "plivo"]), help="Only this provider."),
        click.option("--call-id", help="Only this call."),
        click.option("--number", help="Only calls from or to this number (as the provider wrote it)."),
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def exit_codes(fn: F) -> F:
    """ConfigError -> exit 2, FatalError -> exit 3, each with one clear line on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            echo(f"error: {exc}", err=True)
            raise SystemExit(2) from None
        except FatalError as exc:
            echo(f"error: {exc}", err=True)
            raise SystemExit(3) from None

    return wrapper  # type: ignore[return-value]
