"""The one error tree: every ArchiverError lives in archiver.errors and in its drawing."""

from __future__ import annotations

import importlib
import pkgutil
import signal

import pytest

import archiver
from archiver import errors


def _all_modules() -> None:
    for info in pkgutil.walk_packages(archiver.__path__, "archiver."):
        importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_archiver_error_is_defined_in_errors_and_drawn() -> None:
    _all_modules()
    drawing = errors.__doc__ or ""
    for cls in _subclasses(errors.ArchiverError):
        assert cls.__module__ == "archiver.errors", f"{cls.__name__} is defined in {cls.__module__}"
        assert f"── {cls.__name__} " in drawing, f"{cls.__name__} is missing from the drawing"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.ConfigError("bad"), errors.ExitCode.USAGE),
        (errors.CatalogDamaged("bad"), errors.ExitCode.USAGE),
        (errors.AuthError("401"), errors.ExitCode.CANNOT_PROCEED),
        (errors.StorageUnavailable("down"), errors.ExitCode.CANNOT_PROCEED),
        (errors.LockedError("held"), errors.ExitCode.CANNOT_PROCEED),
        # listing the destination failed: the command cannot go on (not "verify found something")
        (errors.StorageError("cannot list"), errors.ExitCode.CANNOT_PROCEED),
        (errors.ExportError("mismatch"), errors.ExitCode.FAILED),
    ],
)
def test_exit_code_for(exc: errors.ArchiverError, code: errors.ExitCode) -> None:
    assert errors.exit_code_for(exc) is code


def test_exit_codes_match_the_spec_and_signals() -> None:
    assert [int(c) for c in errors.ExitCode] == [0, 1, 2, 3, 130, 143]
    assert errors.ExitCode.for_signal(signal.SIGINT) == errors.ExitCode.INTERRUPTED
    assert errors.ExitCode.for_signal(signal.SIGTERM) == errors.ExitCode.TERMINATED
