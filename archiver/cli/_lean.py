"""Imported first by the command line: what our own process never needs is kept out of it.

``import httpx`` also imports httpx's command-line client (``httpx._main``, which loads rich's
console, progress, syntax and table and pygments' lexers) whenever those are installed, as
they are here for the progress bar: about 30 ms of every run's start-up, for a client the
archiver never runs. Marked absent, httpx defines its stand-in ``httpx.main`` instead (its own
``except ImportError``). Only in the ``archiver`` command's process: a program importing
:mod:`archiver.api` keeps httpx as it is.
"""

from __future__ import annotations

import sys

if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
