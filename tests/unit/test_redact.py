"""archiver.redact: every form of a secret goes; ordinary text stays; control characters show."""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
from urllib.parse import quote, quote_plus

import pytest

from archiver.cli.logs import TRACE_PREFIX, JsonFormatter, RedactSecrets, TextFormatter
from archiver.config import load_settings
from archiver.redact import REDACTED, Redactor, escape_controls, json_line

SECRET = 'se/cr+et="Zq8\\sX3 é'
R = Redactor([SECRET])


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        quote(SECRET, safe=""),
        quote(SECRET),
        quote_plus(SECRET),
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(SECRET, safe="")),
        "".join(f"%{b:02X}" for b in SECRET.encode()),  # every byte encoded
        json.dumps(SECRET)[1:-1],  # JSON-escaped (\" and \\)
        json.dumps(SECRET, ensure_ascii=True)[1:-1],  # ... and \u00e9
    ],
)
def test_plain_url_and_json_forms_are_removed(form: str) -> None:
    assert R(f"error: ({form}) denied") == f"error: ({REDACTED}) denied"


@pytest.mark.parametrize("user", ["", "u", "us", "MAHOSTILE0000000001", "t-cat-token"])
def test_base64_alone_or_inside_a_basic_header_is_removed_whole(user: str) -> None:
    """Whatever the user's length (so whatever the secret's alignment in the base64), the
    whole base64 word goes, padding included, standard or URL-safe alphabet."""
    pair = f"{user}:{SECRET}" if user else SECRET
    for encoded in (b64(pair), base64.urlsafe_b64encode(pair.encode()).decode(), b64(pair).rstrip("=")):
        said = R(f"you sent Authorization: Basic {encoded}, bye")
        assert said == f"you sent Authorization: Basic {REDACTED}, bye"


def test_pairs_remove_the_exact_header_value() -> None:
    r = Redactor([], [("MA1", "a-long-password")])
    assert r(f"Basic {b64('MA1:a-long-password')}") == f"Basic {REDACTED}"


def test_ordinary_text_and_the_account_id_stay() -> None:
    text = "list recordings: HTTP 401 (MAHOSTILE0000000001 r-1 TUFIT1NUSUxF==)"
    assert R(text) == text
    assert Redactor([])(text) == text and not Redactor([])
    assert Redactor(["abc", None, ""])("abc") == "abc"  # too short to redact safely


def test_several_secrets_and_documents() -> None:
    r = Redactor(["first-secret", "second-secret"])
    doc = {"a": ["x first-secret", {"b": quote("second-secret!")}], "n": 3, "first-secret": None}
    assert r.doc(doc) == {"a": [f"x {REDACTED}", {"b": REDACTED + "%21"}], "n": 3, REDACTED: None}


def test_from_authorization_takes_what_the_header_carried() -> None:
    r = Redactor.from_authorization(f"Basic {b64('t-cat-token:cat-secret-9')}")
    assert r("token t-cat-token secret cat-secret-9") == f"token {REDACTED} secret {REDACTED}"
    assert Redactor.from_authorization("Bearer abcdefgh")("x abcdefgh") == f"x {REDACTED}"
    assert not Redactor.from_authorization(None)


def test_settings_redactor_knows_every_secret_but_not_the_account() -> None:
    s = load_settings(
        None,
        {
            "PLIVO_AUTH_ID": "MAHOSTILE0000000001",
            "PLIVO_AUTH_TOKEN": "tok-very-secret",
            "CATAPULT_API_TOKEN": "cat-token-123",
            "CATAPULT_API_SECRET": "cat-very-secret",
        },
    )
    r = s.redactor()
    header = b64("MAHOSTILE0000000001:tok-very-secret")
    said = f"MAHOSTILE0000000001 {header} cat-token-123 {b64('cat-very-secret')}"
    assert r(said) == f"MAHOSTILE0000000001 {REDACTED} {REDACTED} {REDACTED}"


def test_escape_controls() -> None:
    assert escape_controls("a\nb\rc\x1b[2J\x00\x7f\x85\x9b\u2028\u2029\u202e") == (
        "a\\nb\\rc\\x1b[2J\\x00\\x7f\\x85\\x9b\\u2028\\u2029\\u202e"
    )
    assert escape_controls("tab\tstays, é 中文 too") == "tab\tstays, é 中文 too"


def test_json_line_escapes_what_json_dumps_leaves_raw() -> None:
    value = "r\x7f\x85\u2028\u2029\u202e\n\x1b"
    line = json_line(json.dumps({"id": value}, ensure_ascii=False))
    assert len(line.splitlines()) == 1
    assert json.loads(line) == {"id": value}


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError(f"bad id r-1\n12:00:00 INFO forged, token {SECRET}")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("archiver", logging.ERROR, __file__, 1, msg, args, info)


def test_text_log_records_are_redacted_and_one_line_each_traceback_marked() -> None:
    record = _record("failed %s: %s", "r-1\n12:00:00 INFO forged", f"Basic {b64('u:' + SECRET)}", exc=True)
    assert RedactSecrets(R).filter(record)
    out = TextFormatter().format(record)
    head, *trace = out.split("\n")
    assert head.endswith(f"ERROR failed r-1\\n12:00:00 INFO forged: Basic {REDACTED}")
    assert trace and all(line.startswith(TRACE_PREFIX) for line in trace)
    assert SECRET not in out and "Traceback" in out


def test_json_log_records_are_redacted_with_their_traceback() -> None:
    record = _record("failed %s", "r-1\u2028x", exc=True)
    record.recording_id = f"r-1 {SECRET}"
    RedactSecrets(R).filter(record)
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1
    doc = json.loads(line)
    assert doc["message"] == "failed r-1\u2028x"
    assert doc["recording_id"] == f"r-1 {REDACTED}"
    assert SECRET not in doc["exception"] and REDACTED in doc["exception"]
