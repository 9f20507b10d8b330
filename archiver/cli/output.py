"""Every line the CLI prints goes through :func:`echo`: secrets redacted, control characters
escaped. ``click.echo`` alone would bypass the log filter (summaries, errors and dry-run lines
quote provider messages and ids)."""

from __future__ import annotations

import click

from archiver.redact import Redactor, escape_controls

_KEY = "archiver.redactor"
_STDOUT_TAKEN = "archiver.stdout-reserved"


def use_redactor(ctx: click.Context, redactor: Redactor) -> None:
    """Redact with ``redactor`` in every line printed for this invocation (``ctx.meta`` is
    shared by the command's whole context chain)."""
    ctx.meta[_KEY] = redactor


def current_redactor() -> Redactor:
    """This invocation's redactor; one that changes nothing before settings are loaded."""
    ctx = click.get_current_context(silent=True)
    found = ctx.meta.get(_KEY) if ctx is not None else None
    return found if isinstance(found, Redactor) else Redactor()


def reserve_stdout() -> None:
    """Keep stdout for one document (``--report -``): from now on every line :func:`echo`
    prints goes to stderr, so the document can be piped whole."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_STDOUT_TAKEN] = True


def echo(*lines: str, err: bool = False) -> None:
    """Print each argument as one line (stdout, or stderr with ``err`` or when stdout is
    reserved): redacted, and with control characters escaped, so no value inside can break
    the line or reach the terminal as a control sequence."""
    redact = current_redactor()
    ctx = click.get_current_context(silent=True)
    err = err or bool(ctx is not None and ctx.meta.get(_STDOUT_TAKEN))
    for line in lines:
        click.echo(escape_controls(redact(line)), err=err)
