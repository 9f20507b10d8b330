"""The one error tree: every ArchiverError lives in archiver.errors and in its drawing."""

from __future__ import annotations

import importlib
import pkgutil

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
