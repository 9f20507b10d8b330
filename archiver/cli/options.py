"""Options several commands share, and ``exit_codes``: errors -> one line and an exit code."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
from click.shell_completion import CompletionItem

from archiver.cli.output import echo
from archiver.cli.outputs import JsonOption, json_failure
from archiver.cli.wiring import GlobalOptions
from archiver.errors import ArchiverError, ConfigError, exit_code_for
from archiver.providers import NAMES as PROVIDERS
from archiver.sidecars import Selection
from archiver.timeutil import parse_when, utcnow

F = TypeVar("F", bound=Callable[..., Any])


DEST_HELP = "The archive: a folder, file:///path or s3://bucket/prefix (default: [archive] dest)."


def complete_folder(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """TAB on --dest: the shell's own folder completion, unless an URL is being typed."""
    return (
        []
        if "://" in incomplete or incomplete.startswith("s3:")
        else [CompletionItem(incomplete, type="dir")]
    )


def complete_profile(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """TAB on a profile name: the built-in profiles (a config file's own are not read here)."""
    from archiver.profiles import BUILTIN

    return [CompletionItem(name) for name in sorted(BUILTIN) if name.startswith(incomplete)]


# Declared once: every command that reads or writes an archive takes it the same way.
dest_option = click.option("--dest", help=DEST_HELP, shell_complete=complete_folder)


# Declared once: every command that prints one JSON document (doctor, verify, export, config
# show, forget, reindex, legal-hold, custody verify) takes it the same way.
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    cls=JsonOption,
    help="Print one JSON document on stdout (with schema_version); the human lines go to stderr, "
    "and an error is a document too ({error, exit_code}).",
)


def archive_options(fn: F) -> F:
    """The options of ``backfill`` and ``fetch`` (and later ``run``)."""
    options = [
        click.option(
            "--provider",
            type=click.Choice(PROVIDERS),
            required=True,
            help="Which provider to archive from.",
        ),
        dest_option,
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
            shell_complete=complete_profile,
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
            fail(exc)
        return fn(*args, **kwargs)

    options = [
        click.option("--since", help="Recordings that started at or after this (YYYY-MM-DD, -7d...)."),
        click.option("--until", help="... and before this (exclusive)."),
        click.option("--provider", type=click.Choice(PROVIDERS), help="Only this provider."),
        click.option("--call-id", help="Only this call."),
        click.option(
            "--number",
            help="Only calls from or to this number (+14155551229, 14155551229 and +1 415-555-1229 "
            "match alike; sip: URIs as written).",
        ),
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def nothing_selected(selection: Selection) -> str:
    """The line saying a selection matched no archived recording (a typo'd --number or date
    must not pass for an empty, clean result)."""
    given = {k: v for k, v in dataclasses.asdict(selection).items() if v is not None}
    if not given:
        return "the archive holds no recordings"
    shown = ", ".join(
        f"--{k.replace('_', '-')} {v.isoformat() if hasattr(v, 'isoformat') else v}" for k, v in given.items()
    )
    return f"no archived recording matches {shown}"


def fail(exc: ArchiverError) -> NoReturn:
    """One clear line on stderr, then exit with the code :func:`archiver.errors.exit_code_for`
    gives (ConfigError 2, FatalError and anything else that stops a command 3, ...)."""
    echo(f"error: {exc}", err=True)
    json_failure(str(exc), exit_code_for(exc))
    raise SystemExit(exit_code_for(exc)) from None


def exit_codes(fn: F) -> F:
    """Every command's error handling: an ArchiverError that ends it becomes :func:`fail`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ArchiverError as exc:
            fail(exc)

    return wrapper  # type: ignore[return-value]


def accept_global_options(command: click.Command) -> None:
    """Let ``command`` take the global options after its name too (``archiver backfill ...
    -v --log-format json``, as rclone and the AWS CLI allow).

    Given in both places, the one after the command wins (it is later on the line, as with
    any repeated option); ``-v`` counts add up and ``-q`` holds if given anywhere."""

    def merge(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
        def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
            if value in (None, 0, False):  # not given here
                return
            g: GlobalOptions = ctx.obj
            if field == "verbose":
                value += g.verbose
            ctx.obj = dataclasses.replace(g, **{field: value})

        return callback

    if any("--config" in p.opts for p in command.params):  # taken already (a shared sub-command)
        return
    command.params += [
        click.Option(
            ["--config"],
            type=click.Path(dir_okay=False),
            expose_value=False,
            callback=merge("config"),
            help="Global options are accepted here too (after the command: these win).",
        ),
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=merge("verbose")),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=merge("quiet")),
        click.Option(
            ["--log-format"],
            type=click.Choice(["text", "json"]),
            expose_value=False,
            callback=merge("log_format"),
        ),
    ]


def executor_option(help: str) -> Callable[[F], F]:
    """``--executor local|dask`` (``backfill``, ``doctor``)."""
    return click.option(
        "--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True, help=help
    )


scheduler_option = click.option(
    "--scheduler",
    help="The Dask scheduler for --executor dask: tcp://HOST:8786, or local[:N] for N worker "
    "processes here. Default: $ARCHIVER_DASK_SCHEDULER or [dask] scheduler.",
)
