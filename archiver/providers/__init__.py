"""Providers by name: the registry, and ``open_provider`` that builds one from Settings.

Each client module (and httpx with it) is imported only when its provider is opened, so
naming the providers (``--provider``'s choices, ``archiver --help``, shell completion) costs
nothing. The settings a provider takes live in :mod:`archiver.config` (``[catapult]``,
``[plivo]``), which imports no provider.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from archiver.errors import ConfigError

if TYPE_CHECKING:
    import httpx

    from archiver.config import Settings
    from archiver.providers.base import Provider
    from archiver.providers.http import Pacer
    from archiver.retry import RetryPolicy

NAMES = ("catapult", "plivo")


PacerFactory = Callable[[str, str, str, float], "Pacer"]  # (base_url, account, family, rate)


def open_provider(
    name: str,
    settings: Settings,
    client: httpx.Client,
    *,
    policy: RetryPolicy,
    pacing_folder: str,
    pacer: PacerFactory | None = None,
) -> Provider:
    """The named provider's client on ``client``. Its requests are paced per provider account
    + endpoint family across every process on this machine that shares ``pacing_folder``
    (the catalog's), or by ``pacer`` (a cluster's shared limiter). ConfigError for an
    unknown name or missing credentials."""
    if name not in NAMES:
        raise ConfigError(f"unknown provider {name!r}; known: {', '.join(NAMES)}")
    settings.require_provider(name)
    from archiver.providers.http import SharedPacer, pacing_path

    def shared(base_url: str, account: str, family: str, rate: float) -> Pacer:
        return SharedPacer(rate, pacing_path(pacing_folder, name, base_url, account, family))

    opener = _open_catapult if name == "catapult" else _open_plivo
    return opener(settings, client, policy, pacer or shared)


def _open_catapult(
    settings: Settings, client: httpx.Client, policy: RetryPolicy, pacer: PacerFactory
) -> Provider:
    from archiver.providers.catapult import CatapultProvider
    from archiver.providers.http import ApiClient, CredentialScope

    c = settings.catapult
    assert c.user_id and c.api_token and c.api_secret
    scope = CredentialScope(c.base_url, c.api_token, c.api_secret)
    pacers = {
        k: pacer(c.base_url, c.user_id, k, c.requests_per_second) for k in ("recordings", "media", "calls")
    }
    return CatapultProvider(
        ApiClient(client, scope, policy, pacers),
        base_url=c.base_url,
        user_id=c.user_id,
        page_size=c.page_size,
        call_details=c.call_details,
    )


def _open_plivo(
    settings: Settings, client: httpx.Client, policy: RetryPolicy, pacer: PacerFactory
) -> Provider:
    from archiver.providers.http import ApiClient, CredentialScope
    from archiver.providers.plivo import PlivoProvider

    p = settings.plivo
    assert p.auth_id and p.auth_token
    scope = CredentialScope(p.base_url, p.auth_id, p.auth_token, trusted_suffixes=(".plivo.com",))
    return PlivoProvider(
        ApiClient(client, scope, policy, {"api": pacer(p.base_url, p.auth_id, "api", p.requests_per_second)}),
        base_url=p.base_url,
        auth_id=p.auth_id,
    )


def pacing_folder_of(catalog_path: str) -> str:
    """Providers pace across the processes that use a catalog in the same folder."""
    return os.path.dirname(os.path.abspath(catalog_path))


def make_client(*, timeout: float = 60.0, max_connections: int = 16) -> httpx.Client:
    """The HTTP client providers and downloads share (:func:`archiver.providers.http.make_client`),
    importing httpx only now."""
    from archiver.providers.http import make_client as make

    return make(timeout=timeout, max_connections=max_connections)
