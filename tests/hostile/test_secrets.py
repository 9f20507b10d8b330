"""Issue 8, 2.2: a provider that echoes our credentials into its error bodies never gets them
printed, logged or stored by us, in any form we can know (plain, URL-encoded, the base64 a
Basic header carries, the base64 of the secret alone).

Each scenario scripts one kind of request the clients make to answer with an error that
echoes the request's credentials, runs the CLI once with JSON logs and once with text logs,
and scans every sink: stdout, stderr, the --report file, every table of the catalog, the
metrics file and every file written into the destination (sidecars included).
"""

from __future__ import annotations

import base64
import sqlite3
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner
from scripted import Reply, Request, Scripted
from stand_in import CAT_USER, PLIVO_ID, RANGE, catapult_record, plivo_page, plivo_record, wav

from archiver.cli import main

# Secrets with characters that URL-encoding and base64 change, so every form differs.
PLIVO_TOKEN = "pl1vo+T0ken/Zq8=sX3~a&b"
CAT_TOKEN = "t-cat.tok+K7/x=y%z"
CAT_SECRET = "s3cr=et&W9e?z#q/w+e"
SECRETS = (PLIVO_TOKEN, CAT_TOKEN, CAT_SECRET)
PAIRS = ((PLIVO_ID, PLIVO_TOKEN), (CAT_TOKEN, CAT_SECRET))


def _b64(data: bytes) -> list[str]:
    std = base64.b64encode(data).decode()
    url = base64.urlsafe_b64encode(data).decode()
    return [std, url, std.rstrip("="), url.rstrip("=")]


def _b64_cores(data: bytes) -> list[str]:
    """The part of base64 that only the secret's bytes decide, at each of the three
    alignments it can have inside a longer base64 text (a Basic header, say)."""
    cores = []
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + data).decode()
        start, end = -(-8 * k // 6), 8 * (k + len(data)) // 6
        cores.append(enc[start:end])
        cores.append(enc[start:end].replace("+", "-").replace("/", "_"))
    return cores


def forms(secret: str) -> list[str]:
    """Every form of ``secret`` that must not appear anywhere."""
    raw = secret.encode()
    out = [secret, quote(secret, safe=""), quote(secret), quote_plus(secret)]
    out.append("".join(f"%{b:02x}" for b in raw))  # fully, lower-case percent-encoded
    out += _b64(raw) + _b64_cores(raw)
    return out


FORBIDDEN = sorted(
    {f for s in SECRETS for f in forms(s)} | {f for user, pw in PAIRS for f in _b64(f"{user}:{pw}".encode())}
)


def leak_everything(status: int) -> Callable[[Request], Reply]:
    """A JSON error body that quotes the request's credentials in every form, in each of the
    fields our error descriptions read."""

    def answer(req: Request) -> Reply:
        user, pw = req.basic or ("", "")
        said = (
            f"denied {req.auth} user={user} password={pw} q={quote(pw, safe='')} "
            f"qp={quote_plus(pw)} b64={base64.b64encode(pw.encode()).decode()} "
            f"u64={base64.urlsafe_b64encode(pw.encode()).decode()} "
            f"hex={''.join(f'%{b:02x}' for b in pw.encode())}"
        )
        doc = {"api_id": "x", "error": said, "message": said, "category": said, "code": user}
        return Reply(status=status, json=doc, headers={"X-Echo": said})

    return answer


def echo_auth(status: int) -> Reply:
    """The scripted server's own careless error page: the body is not JSON."""
    page = b"<html>denied</html>"
    return Reply(status=status, body=page, echo_auth=True, headers={"Content-Type": "text/html"})


STYLES = {"json-body": leak_everything, "echo-auth": echo_auth}
AUDIO = Reply(body=wav(), headers={"Content-Type": "audio/wav"})


@dataclass
class Sinks:
    """Where one run wrote: the test reads them all back."""

    root: Path

    def args(self) -> list[str]:
        self.root.mkdir(parents=True, exist_ok=True)  # --report's folder must exist (issue 9)
        return [
            "--dest",
            str(self.root / "dest"),
            "--report",
            str(self.root / "report.json"),
            "--catalog",
            str(self.root / "catalog.db"),
            "--metrics-file",
            str(self.root / "metrics.prom"),
        ]

    def texts(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and path.suffix in (".json", ".prom", ".wav", ".mp3", ""):
                out[str(path.relative_to(self.root))] = path.read_bytes().decode("utf-8", "replace")
        db = self.root / "catalog.db"
        if db.exists():
            con = sqlite3.connect(db)
            try:
                out["catalog (iterdump)"] = "\n".join(con.iterdump())
            finally:
                con.close()
        return out


Scenario = Callable[[Scripted, Callable[[int], Any]], list[str]]


def plivo_list(status: int) -> Scenario:
    def script(srv: Scripted, err: Callable[[int], Any]) -> list[str]:
        srv.route("GET", f"/v1/Account/{PLIVO_ID}/Recording/", err(status))
        return ["backfill", "--provider", "plivo", *RANGE]

    return script


def plivo_get_one(status: int) -> Scenario:
    def script(srv: Scripted, err: Callable[[int], Any]) -> list[str]:
        srv.route("GET", f"/v1/Account/{PLIVO_ID}/Recording/r-1/", err(status))
        return ["fetch", "--provider", "plivo", "r-1"]

    return script


def plivo_media(status: int) -> Scenario:
    def script(srv: Scripted, err: Callable[[int], Any]) -> list[str]:
        srv.route("GET", f"/v1/Account/{PLIVO_ID}/Recording/", plivo_page([plivo_record(srv, "r-1")]))
        srv.route("GET", r"/media/.*", err(status))
        return ["backfill", "--provider", "plivo", *RANGE]

    return script


def plivo_delete(status: int) -> Scenario:
    def script(srv: Scripted, err: Callable[[int], Any]) -> list[str]:
        srv.route("GET", f"/v1/Account/{PLIVO_ID}/Recording/", plivo_page([plivo_record(srv, "r-1")]))
        srv.route("GET", r"/media/.*", AUDIO)
        srv.route("DELETE", f"/v1/Account/{PLIVO_ID}/Recording/r-1/", err(status))
        return ["backfill", "--provider", "plivo", *RANGE, "--delete-after-archive"]

    return script


def catapult_list(status: int) -> Scenario:
    def script(srv: Scripted, err: Callable[[int], Any]) -> list[str]:
        srv.route("GET", f"/v1/users/{CAT_USER}/recordings", err(status))
        return ["backfill", "--provider", "catapult", *RANGE]

    return script


def catapult_calls(status: int) -> Scenario:
    def script(srv: Scripted, err: Callable[[int], Any]) -> list[str]:
        root = f"/v1/users/{CAT_USER}"
        srv.route("GET", f"{root}/recordings", Reply(json=[catapult_record(srv, "rec-1")]))
        srv.route("GET", f"{root}/calls/.*", err(status))
        srv.route("GET", f"{root}/media/.*", AUDIO)
        return ["backfill", "--provider", "catapult", *RANGE]

    return script


def catapult_media(status: int) -> Scenario:
    def script(srv: Scripted, err: Callable[[int], Any]) -> list[str]:
        root = f"/v1/users/{CAT_USER}"
        srv.route("GET", f"{root}/recordings", Reply(json=[catapult_record(srv, "rec-1")]))
        srv.route("GET", f"{root}/calls/.*", Reply(json={"from": "+1415", "to": "+1416"}))
        srv.route("GET", f"{root}/media/.*", err(status))
        return ["backfill", "--provider", "catapult", *RANGE]

    return script


SCENARIOS: dict[str, Scenario] = {
    "plivo-list-400": plivo_list(400),
    "plivo-list-401": plivo_list(401),
    "plivo-list-500": plivo_list(500),
    "plivo-get-404": plivo_get_one(404),
    "plivo-media-403": plivo_media(403),
    "plivo-media-404": plivo_media(404),
    "plivo-media-500": plivo_media(500),
    "plivo-delete-500": plivo_delete(500),
    "catapult-list-401": catapult_list(401),
    "catapult-list-400": catapult_list(400),
    "catapult-list-503": catapult_list(503),
    "catapult-calls-503": catapult_calls(503),
    "catapult-media-403": catapult_media(403),
    "catapult-media-404": catapult_media(404),
    "catapult-media-500": catapult_media(500),
}


def leaks(texts: dict[str, str]) -> list[str]:
    return [f"{form!r} in {where}" for where, text in texts.items() for form in FORBIDDEN if form in text]


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_echoed_credentials_reach_no_output_and_no_file(
    name: str, style: str, tmp_path: Path, scripted, plivo_at, catapult_at, quick_config, monkeypatch
) -> None:
    plivo_at(scripted)
    catapult_at(scripted)
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", PLIVO_TOKEN)
    monkeypatch.setenv("CATAPULT_API_TOKEN", CAT_TOKEN)
    monkeypatch.setenv("CATAPULT_API_SECRET", CAT_SECRET)
    args = SCENARIOS[name](scripted, STYLES[style])
    for log_format in ("json", "text"):
        sinks = Sinks(tmp_path / log_format)
        argv = ["--config", quick_config(), "-v", "--log-format", log_format, *args, *sinks.args()]
        # Exceptions are caught and scanned too: whether a listing 400 ends the run cleanly
        # (exit 3) is item 3.2's; that its message carries no secret is this test's.
        r = CliRunner().invoke(main, argv)
        crash = "".join(traceback.format_exception(r.exception)) if r.exception else ""
        if isinstance(r.exception, SystemExit):
            crash = ""
        # The run reached the scripted failure: the provider really echoed the credentials.
        assert r.exit_code != 0 or name == "catapult-calls-503", r.output
        assert any(req.auth for req in scripted.requests)
        found = leaks({"stdout": r.stdout, "stderr": r.stderr, "exception": crash, **sinks.texts()})
        assert not found, f"{log_format} logs: " + "; ".join(found[:5])
        if style == "json-body":  # the provider's message is still told, its secrets masked
            assert "***" in r.output + crash, r.output


def test_the_scripted_echo_would_leak_every_form() -> None:
    """The scan is not vacuous: the forms the scenarios look for are what a Basic header and
    the echo bodies carry."""
    header = base64.b64encode(f"{PLIVO_ID}:{PLIVO_TOKEN}".encode()).decode()
    assert any(core in header for core in _b64_cores(PLIVO_TOKEN.encode()))
    assert quote(PLIVO_TOKEN, safe="") != PLIVO_TOKEN != quote_plus(PLIVO_TOKEN)
