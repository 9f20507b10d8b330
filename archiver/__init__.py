"""archiver: pull call recordings out of telephony providers into storage you own."""

from __future__ import annotations

__version__ = "0.1.0"
