"""Files a command writes beside its work (``--report``, ``--metrics-file``): checked before any
work is done, written whole or not at all.

A bad path used to be found only when the report was written, after the whole run, as a
traceback. Each path is now tried before the first request: its folder must exist and take a
new file, since the file is written as a temp file in that folder and renamed into place (a
reader, the textfile collector or a second Ctrl-C never sees half a report).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from typing import Any

import click

from archiver.cli.output import current_redactor, reserve_stdout
from archiver.errors import ConfigError

STDOUT = "-"


def check_output_path(option: str, path: str | None, *, dash: bool = False) -> None:
    """ConfigError (exit 2, nothing done) unless ``path`` can be written. With ``dash``, ``-``
    means stdout, which is then kept for that document alone (see :func:`reserve_stdout`)."""
    if not path:
        return
    if dash and path == STDOUT:
        reserve_stdout()
        return
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise ConfigError(f"{option} {path} is a folder: give a file path")
    if os.path.exists(real) and not _regular(real):  # /dev/stdout, a fifo: written in place
        if not os.access(real, os.W_OK):
            raise ConfigError(f"{option} {path}: not writable")
        return
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise ConfigError(f"{option} {path}: {os.path.dirname(path) or '.'} {what}")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".archiver-probe-")
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write in {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


# The version of every document `--json` prints; raised when a key changes meaning or goes.
JSON_SCHEMA_VERSION = 1


def take_stdout_for_json(as_json: bool, report: str | None = None) -> None:
    """With ``--json``, stdout carries one JSON document and every human line goes to stderr
    from here on. ``--report -`` would be a second document on stdout: refused (exit 2)."""
    if not as_json:
        return
    if report == STDOUT:
        raise ConfigError("--json and --report - both print a document on stdout: give --report a file")
    reserve_stdout()
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[JSON_COMMAND] = ctx.command_path.removeprefix(ctx.find_root().info_name or "").strip()


JSON_COMMAND = "archiver.json-command"
_JSON_PRINTED = "archiver.json-printed"


class JsonOption(click.Option):
    """``--json``: the command prints one JSON document on stdout. :class:`JsonAwareGroup`
    looks for it before the command parses its other options, so that a usage error (a bad
    date, an unknown option, a value click refuses) is a document too."""


class JsonAwareGroup(click.Group):
    """A group whose commands' ``--json`` holds from the start: stdout is kept for the one
    document before the command parses anything, and a click usage error of the command is
    printed as ``{error, exit_code}`` on stdout (click's usage text still goes to stderr)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and _asks_for_json(command, rest):
            reserve_stdout()
            path = f"{ctx.command_path} {command.name}"
            ctx.meta[JSON_COMMAND] = path.removeprefix(ctx.find_root().info_name or "").strip()
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            json_failure(exc.format_message(), exc.exit_code)
            raise


def _asks_for_json(command: click.Command, args: list[str]) -> bool:
    """Whether ``args`` (before a ``--``) give ``command`` its ``--json`` flag, or ask for its
    report on stdout (``--report -``): either way stdout is one JSON document, an error's too."""
    given = args[: args.index("--")] if "--" in args else args
    if "--json" in given and any(isinstance(p, JsonOption) for p in command.params):
        return True
    to_stdout = "--report=-" in given or any(
        a == "--report" and b == STDOUT for a, b in zip(given, given[1:], strict=False)
    )
    return to_stdout and any("--report" in getattr(p, "opts", ()) for p in command.params)


def json_failure(message: str, code: int) -> None:
    """Under ``--json``, a command that fails still prints its one document: the error."""
    ctx = click.get_current_context(silent=True)
    command = ctx.meta.get(JSON_COMMAND) if ctx is not None else None
    if command and not ctx.meta.get(_JSON_PRINTED):  # type: ignore[union-attr]
        print_json(command, {"error": message, "exit_code": code})


def print_json(command: str, doc: dict[str, Any]) -> None:
    """The one JSON document of ``--json``: ``schema_version`` and ``command``, then ``doc``."""
    full = current_redactor().doc({"schema_version": JSON_SCHEMA_VERSION, "command": command, **doc})
    click.echo(json.dumps(full, indent=2, sort_keys=True))  # JSON escapes every control character
    _printed()


def _printed() -> None:
    """stdout has had its one document: no error document may follow it."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_JSON_PRINTED] = True


def write_report(path: str, doc: Any) -> None:
    """The JSON document at ``path``, or on stdout for ``-``."""
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if path == STDOUT:
        click.echo(text, nl=False)  # JSON escapes every control character already
        _printed()
    else:
        write_atomic(path, text)


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` by temp file + rename in the same folder (through a symlink
    to its target); a device or fifo is written in place."""
    real = os.path.realpath(path)
    if os.path.exists(real) and not _regular(real):
        with open(real, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(real), prefix=".archiver-write-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _regular(path: str) -> bool:
    return stat.S_ISREG(os.stat(path).st_mode)
