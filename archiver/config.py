"""Settings: built-in defaults < config file (TOML) < environment < command-line flags.

Merged once, validated once, frozen. Credentials come only from the environment or the file.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from importlib import resources
from typing import Any, Literal

from archiver.errors import ConfigError
from archiver.models import DEFAULT_LAYOUT, validate_layout
from archiver.profiles import Profile, load_profiles
from archiver.redact import Redactor
from archiver.timeutil import parse_duration

# dotted key -> (type, default)
SCHEMA: dict[str, tuple[type, Any]] = {
    "archive.dest": (str, None),
    "archive.layout": (str, DEFAULT_LAYOUT),
    "archive.concurrency": (int, 8),
    "archive.catalog": (str, None),
    "archive.overlap": (str, "2h"),
    "archive.max_failures": (int, 5),
    "http.timeout_seconds": (float, 60.0),
    "http.max_attempts": (int, 6),
    "http.max_retry_seconds": (float, 180.0),
    "http.download_deadline_seconds": (float, 120.0),
    "catapult.user_id": (str, None),
    "catapult.api_token": (str, None),
    "catapult.api_secret": (str, None),
    "catapult.base_url": (str, "https://api.catapult.inetwork.com"),
    "catapult.requests_per_second": (float, 0.9),  # the limit is 1/s: keep a margin
    "catapult.page_size": (int, 1000),
    "catapult.call_details": (bool, True),
    "plivo.auth_id": (str, None),
    "plivo.auth_token": (str, None),
    "plivo.base_url": (str, "https://api.plivo.com"),
    "plivo.requests_per_second": (float, 50.0),
    "transcode.ffmpeg": (str, None),
    "transcode.workers": (int, None),
    "transcode.memory_cap_mb": (int, 256),
    "s3.storage_class": (str, None),
    "s3.sse": (str, None),
    "s3.sse_kms_key_id": (str, None),
    "s3.object_lock_mode": (str, None),
    "s3.retain_days": (int, None),
    "s3.legal_hold": (bool, False),
    "s3.multipart_threshold_mb": (int, 64),
    "s3.part_size_mb": (int, 16),
    "s3.max_concurrency": (int, 4),
    "s3.abandoned_upload_hours": (float, 24.0),
    "dask.scheduler": (str, None),
    "dask.max_tasks_in_flight": (int, 64),
    "export.source_organization": (str, None),
}

# Keys whose values are credentials: never printed (``archiver config show`` masks them).
SECRET_KEYS = frozenset({"catapult.api_token", "catapult.api_secret", "plivo.auth_token"})

# Every key has ARCHIVER_<SECTION>_<KEY> (:func:`env_name`, generated from SCHEMA, so a new
# section gets its variables by being added there). These shorter names came first, are what
# providers' own tools and the simulator's env file use, and stay; where both are set, the
# generated name wins (it is the more specific).
ALIASES: dict[str, str] = {
    "ARCHIVER_DEST": "archive.dest",
    "ARCHIVER_LAYOUT": "archive.layout",
    "ARCHIVER_CONCURRENCY": "archive.concurrency",
    "ARCHIVER_CATALOG": "archive.catalog",
    "CATAPULT_USER_ID": "catapult.user_id",
    "CATAPULT_API_TOKEN": "catapult.api_token",
    "CATAPULT_API_SECRET": "catapult.api_secret",
    "CATAPULT_BASE_URL": "catapult.base_url",
    "CATAPULT_REQUESTS_PER_SECOND": "catapult.requests_per_second",
    "PLIVO_AUTH_ID": "plivo.auth_id",
    "PLIVO_AUTH_TOKEN": "plivo.auth_token",
    "PLIVO_BASE_URL": "plivo.base_url",
    "PLIVO_REQUESTS_PER_SECOND": "plivo.requests_per_second",
    "ARCHIVER_FFMPEG": "transcode.ffmpeg",
}


def env_name(key: str) -> str:
    """The environment variable of a dotted key: ``s3.sse_kms_key_id`` -> ``ARCHIVER_S3_SSE_KMS_KEY_ID``."""
    section, name = key.split(".")
    return f"ARCHIVER_{section.upper()}_{name.upper()}"


def env_names(key: str) -> list[str]:
    """Every variable that sets ``key``, the one that wins first."""
    return [env_name(key), *(var for var, k in ALIASES.items() if k == key)]


# The variables that are not config keys but are ours: anything else ARCHIVER_* is a typo.
OTHER_VARIABLES = frozenset({"ARCHIVER_CONFIG"})


# Variables read from an env file (systemd's EnvironmentFile=, docker's --env-file, sh's `.`)
# whose value a quoting slip damages unseen: ours, and the AWS SDK's.
_ENV_FILE_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
)


def env_file_slips(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(variable, what is wrong) for each value that carries what an env file's reader left
    in: quotes around it (docker's --env-file keeps them; systemd and sh strip them), spaces
    at an end, or a carriage return (a file saved with Windows line ends). Names only: the
    value is never shown."""
    ours = {var for key in SCHEMA for var in env_names(key)}
    slips = []
    for var in sorted(v for v in env if v in ours or v in _ENV_FILE_VARIABLES):
        value = env[var]
        if "\r" in value:
            slips.append((var, "ends in a carriage return (the file has Windows line ends)"))
        elif len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            slips.append((var, "is wrapped in quotes (docker --env-file keeps them: write KEY=value)"))
        elif value != value.strip():
            slips.append((var, "begins or ends with a space"))
    return slips


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """ARCHIVER_* variables that set nothing (a typo'd name loses its setting silently)."""
    known = {var for key in SCHEMA for var in env_names(key)} | OTHER_VARIABLES
    return sorted(v for v in env if v.startswith("ARCHIVER_") and v not in known)


def env_table() -> str:
    """The README's table of every key's variable (a Markdown table, generated from SCHEMA;
    ``archiver config env`` prints it)."""
    rows = ["| key | variable | also | default |", "| --- | --- | --- | --- |"]
    for key, (_, default) in SCHEMA.items():
        also = ", ".join(f"`{v}`" for v in env_names(key)[1:])
        shown = "(secret)" if key in SECRET_KEYS else "" if default is None else f"`{_toml(default)}`"
        rows.append(f"| `{key}` | `{env_name(key)}` | {also} | {shown} |")
    return "\n".join(rows) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    return str(value)


@dataclass(frozen=True)
class CatapultSettings:
    user_id: str | None
    api_token: str | None
    api_secret: str | None
    base_url: str
    requests_per_second: float
    page_size: int
    call_details: bool

    def __repr__(self) -> str:
        return f"CatapultSettings(user_id={self.user_id!r}, base_url={self.base_url!r}, secrets=<hidden>)"


@dataclass(frozen=True)
class PlivoSettings:
    auth_id: str | None
    auth_token: str | None
    base_url: str
    requests_per_second: float

    def __repr__(self) -> str:
        return f"PlivoSettings(auth_id={self.auth_id!r}, base_url={self.base_url!r}, secrets=<hidden>)"


@dataclass(frozen=True)
class ArchiveSettings:
    dest: str | None
    layout: str
    concurrency: int
    catalog: str | None
    overlap: str
    max_failures: int


@dataclass(frozen=True)
class HttpSettings:
    timeout_seconds: float
    max_attempts: int
    max_retry_seconds: float
    download_deadline_seconds: float


@dataclass(frozen=True)
class TranscodeSettings:
    ffmpeg: str | None
    workers: int | None  # None: one per CPU
    memory_cap_mb: int


@dataclass(frozen=True)
class S3Settings:
    storage_class: str | None
    sse: str | None
    sse_kms_key_id: str | None
    multipart_threshold_mb: int
    part_size_mb: int
    max_concurrency: int
    object_lock_mode: str | None
    retain_days: int | None
    legal_hold: bool
    abandoned_upload_hours: float


@dataclass(frozen=True)
class ExportSettings:
    source_organization: str | None  # bag-info.txt's Source-Organization (--format bagit)


@dataclass(frozen=True)
class DaskSettings:
    scheduler: str | None  # tcp://HOST:8786, or local / local:N (N worker processes here)
    max_tasks_in_flight: int  # listing windows handed to the cluster at once


@functools.lru_cache(maxsize=8)
def _redactor(secrets: tuple[str, ...], pairs: tuple[tuple[str, str], ...]) -> Redactor:
    """One Redactor per set of secrets in a process: a run asks for it in several places, and
    building one compiles its patterns (a few milliseconds)."""
    return Redactor(secrets, pairs)


@dataclass(frozen=True)
class Settings:
    archive: ArchiveSettings
    http: HttpSettings
    catapult: CatapultSettings
    plivo: PlivoSettings
    s3: S3Settings
    transcode: TranscodeSettings
    profiles: Mapping[str, Profile]
    export: ExportSettings
    dask: DaskSettings

    def secrets(self) -> list[str]:
        """Every secret value, for log redaction."""
        values = [self.catapult.api_token, self.catapult.api_secret, self.plivo.auth_token]
        return [v for v in values if v]

    def without_secrets(self) -> Settings:
        """These settings with every secret blanked: what may travel to another process or
        machine (a cluster's workers fill them in from their own environment or file)."""
        return replace(
            self,
            catapult=replace(self.catapult, api_token=None, api_secret=None),
            plivo=replace(self.plivo, auth_token=None),
        )

    def with_secrets_of(self, own: Settings) -> Settings:
        """These settings with the secrets of ``own`` (a worker's own settings)."""
        return replace(
            self,
            catapult=replace(
                self.catapult, api_token=own.catapult.api_token, api_secret=own.catapult.api_secret
            ),
            plivo=replace(self.plivo, auth_token=own.plivo.auth_token),
        )

    def redactor(self) -> Redactor:
        """Removes every form of every configured secret (:mod:`archiver.redact`). The Plivo
        auth id is not one: it is the account, in every URL, key and sidecar."""
        pairs = [
            (user, password)
            for user, password in (
                (self.catapult.api_token, self.catapult.api_secret),
                (self.plivo.auth_id, self.plivo.auth_token),
            )
            if user and password
        ]
        return _redactor(tuple(self.secrets()), tuple(pairs))

    def require_provider(self, name: str) -> None:
        """ConfigError naming exactly what to set when a provider's credentials are missing."""
        if name == "catapult":
            c = self.catapult
            missing = [
                n
                for n, v in (
                    ("CATAPULT_USER_ID", c.user_id),
                    ("CATAPULT_API_TOKEN", c.api_token),
                    ("CATAPULT_API_SECRET", c.api_secret),
                )
                if not v
            ]
            account = c.user_id
        else:
            p = self.plivo
            missing = [
                n for n, v in (("PLIVO_AUTH_ID", p.auth_id), ("PLIVO_AUTH_TOKEN", p.auth_token)) if not v
            ]
            account = p.auth_id
        if missing:
            raise ConfigError(
                f"{name} credentials missing: set {', '.join(missing)} in the environment "
                f"(or [{name}] in the config file)"
            )
        check_account_id(account_variable(name), account)


# Account ids go into API paths and storage keys. Real ones are Plivo `MA`/`SA` + 18
# [A-Z0-9] and Catapult `u-...`; the simulator and tests use other shapes of the same
# alphabet, so the rule is that alphabet: nothing that could be a path, a dot, or a query.
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def account_variable(provider: str) -> str:
    """The variable that holds a provider's account id."""
    return "CATAPULT_USER_ID" if provider == "catapult" else "PLIVO_AUTH_ID"


def check_account_id(variable: str, value: str | None) -> str:
    """``value`` when it is a safe account id, else ConfigError naming ``variable``."""
    if not value or not ACCOUNT_ID.fullmatch(value):
        raise ConfigError(
            f"{variable} {value!r} is not an account id: use only letters, digits, '-' and '_' "
            "(Plivo auth ids are MA or SA and 18 more characters)"
        )
    return value


def read_config_file(path: str | None) -> dict[str, Any]:
    """Flatten a TOML file into dotted keys; unknown keys are an error (typos lose settings)."""
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    flat: dict[str, Any] = {}
    for section, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: {section!r} must be a [table]")
        if section == "profiles":  # [profiles.NAME] tables, validated by load_profiles
            flat["profiles"] = table
            continue
        for key, value in table.items():
            dotted = f"{section}.{key}"
            if dotted not in SCHEMA:
                raise ConfigError(f"config file {path}: unknown key {dotted!r}")
            flat[dotted] = value
    return flat


def _coerce(key: str, value: Any, origin: str) -> Any:
    kind, _ = SCHEMA[key]
    if value is None or value == "":
        return None
    try:
        if kind is int and not isinstance(value, bool):
            return int(value)
        if kind is float and not isinstance(value, bool):
            return float(value)
        if kind is str:
            return str(value)
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{key} from {origin}: {value!r} is not a valid {kind.__name__}")


@dataclass(frozen=True)
class Source:
    """Where a setting's value came from: ``flag``, ``env`` (``where``: the variable),
    ``file`` (``where``: its path) or ``default``."""

    kind: Literal["flag", "env", "file", "default"]
    where: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.where}" if self.where else self.kind


def merge(
    config_path: str | None,
    env: Mapping[str, str],
    flags: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Source]]:
    """Every key's value (defaults < file < env < flags; flags that are None are unset),
    coerced but not yet validated, and where each came from."""
    merged: dict[str, Any] = {k: default for k, (_, default) in SCHEMA.items()}
    sources: dict[str, Source] = dict.fromkeys(SCHEMA, Source("default"))
    from_file = read_config_file(config_path)
    merged["profiles"] = from_file.pop("profiles", {})
    for key, value in from_file.items():
        merged[key] = _coerce(key, value, f"config file {config_path}")
        sources[key] = Source("file", config_path)
    for key in SCHEMA:
        var = next((v for v in env_names(key) if env.get(v)), None)
        if var is not None:
            merged[key] = _coerce(key, env[var], f"${var}")
            sources[key] = Source("env", var)
    for key, value in (flags or {}).items():
        if value is not None:
            merged[key] = _coerce(key, value, "the command line")
            sources[key] = Source("flag")
    return merged, sources


def load_settings(
    config_path: str | None,
    env: Mapping[str, str],
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge defaults < file < env < flags (flags that are None are unset) and validate."""
    return _build(merge(config_path, env, flags)[0])


def resolve(
    config_path: str | None,
    env: Mapping[str, str],
    flags: Mapping[str, Any] | None = None,
) -> tuple[Settings, dict[str, Any], dict[str, Source]]:
    """:func:`load_settings`, with the merged values by key and where each came from
    (``archiver config show``)."""
    merged, sources = merge(config_path, env, flags)
    return _build(merged), merged, sources


def _section(cls: type, merged: Mapping[str, Any], prefix: str) -> Any:
    return cls(**{f.name: merged[f"{prefix}.{f.name}"] for f in fields(cls)})


def _build(merged: Mapping[str, Any]) -> Settings:
    settings = Settings(
        archive=_section(ArchiveSettings, merged, "archive"),
        http=_section(HttpSettings, merged, "http"),
        catapult=_section(CatapultSettings, merged, "catapult"),
        plivo=_section(PlivoSettings, merged, "plivo"),
        s3=_section(S3Settings, merged, "s3"),
        transcode=_section(TranscodeSettings, merged, "transcode"),
        profiles=load_profiles(merged["profiles"]),
        export=_section(ExportSettings, merged, "export"),
        dask=_section(DaskSettings, merged, "dask"),
    )
    if settings.transcode.workers is not None and settings.transcode.workers < 1:
        raise ConfigError("transcode.workers must be at least 1")
    if settings.transcode.memory_cap_mb < 1:
        raise ConfigError("transcode.memory_cap_mb must be at least 1")
    if not 0 <= settings.s3.abandoned_upload_hours < 1e6:  # also refuses nan and inf
        raise ConfigError(
            f"s3.abandoned_upload_hours must be 0 or more, not {settings.s3.abandoned_upload_hours}"
        )
    validate_layout(settings.archive.layout)
    if not 1 <= settings.archive.concurrency <= 256:
        raise ConfigError(f"concurrency must be 1..256, not {settings.archive.concurrency}")
    parse_duration(settings.archive.overlap)
    if settings.dask.max_tasks_in_flight < 1:
        raise ConfigError("dask.max_tasks_in_flight must be at least 1")
    if settings.archive.max_failures < 1:
        raise ConfigError("archive.max_failures must be at least 1")
    if settings.http.max_attempts < 1 or settings.http.timeout_seconds <= 0:
        raise ConfigError("http.max_attempts must be >= 1 and http.timeout_seconds > 0")
    if not 0 < settings.http.download_deadline_seconds < math.inf:
        raise ConfigError("http.download_deadline_seconds must be a number of seconds more than 0")
    for name in ("catapult", "plivo"):
        rate = merged[f"{name}.requests_per_second"]
        if not 0 < rate < math.inf:  # also refuses nan, which compares false with everything
            raise ConfigError(f"{name}.requests_per_second must be a number more than 0, not {rate!r}")
        url = merged[f"{name}.base_url"]
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"{name}.base_url {url!r} must be an http(s) URL")
    s3 = settings.s3
    if s3.object_lock_mode not in (None, "GOVERNANCE", "COMPLIANCE"):
        raise ConfigError(
            f"s3.object_lock_mode must be GOVERNANCE or COMPLIANCE, not {s3.object_lock_mode!r}"
        )
    if bool(s3.object_lock_mode) != bool(s3.retain_days):
        raise ConfigError(
            "--object-lock-mode and --retain-days go together (retention = call start + N days)"
        )
    if s3.retain_days is not None and s3.retain_days < 1:
        raise ConfigError("--retain-days must be at least 1")
    if (s3.object_lock_mode or s3.legal_hold) and not str(settings.archive.dest or "").startswith("s3://"):
        raise ConfigError("Object Lock and legal hold need an s3:// destination")
    if settings.s3.sse not in (None, "AES256", "aws:kms"):
        raise ConfigError(f"s3.sse must be AES256 or aws:kms, not {settings.s3.sse!r}")
    return settings


def example_config() -> str:
    """The example config file shipped in the package (``archiver/data``): every key of
    :data:`SCHEMA` with its default, or commented out where there is none."""
    return resources.files("archiver.data").joinpath("archiver.example.toml").read_text("utf-8")


# Looked at when neither --config nor ARCHIVER_CONFIG names a file (after the user's own).
SYSTEM_CONFIG = "/etc/archiver/config.toml"


@dataclass(frozen=True)
class ConfigFile:
    """The config file a command reads (``path`` None: none), how it was chosen, and every
    place looked at for it."""

    path: str | None
    chosen_by: str  # "--config", "ARCHIVER_CONFIG", "XDG_CONFIG_HOME", "system", "none"
    searched: tuple[str, ...] = ()


def user_config(env: Mapping[str, str]) -> str:
    """``$XDG_CONFIG_HOME/archiver/config.toml`` (``~/.config`` when it is unset, empty or
    relative, as the XDG spec says)."""
    base = env.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.join(base, "archiver", "config.toml")


def find_config(flag: str | None, env: Mapping[str, str]) -> ConfigFile:
    """``--config``, else ``$ARCHIVER_CONFIG``, else the first of the user's and the system's
    config file that exists, else none. A file named by the first two must exist (a typo must
    not run on defaults); the other two are optional."""
    if flag:
        return ConfigFile(flag, "--config")
    if env.get("ARCHIVER_CONFIG"):
        return ConfigFile(env["ARCHIVER_CONFIG"], "ARCHIVER_CONFIG")
    searched = (user_config(env), SYSTEM_CONFIG)
    for path, how in zip(searched, ("XDG_CONFIG_HOME", "system"), strict=True):
        if os.path.exists(path):
            return ConfigFile(path, how, searched)
    return ConfigFile(None, "none", searched)


def config_path_from(flag: str | None, env: Mapping[str, str]) -> str | None:
    """The path :func:`find_config` chooses, or None."""
    return find_config(flag, env).path


def environ() -> Mapping[str, str]:
    return os.environ
