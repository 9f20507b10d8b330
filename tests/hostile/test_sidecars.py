"""Sidecars in the archive are input, not truth to obey blindly (issue 8: 2.1, 2.4, 3.10, 3.11).

Anyone who can write the archive bucket can plant a ``.json``; a damaged disk can garble one,
or the catalog. Every command that reads sidecars must refuse keys that reach outside (an
export never writes outside ``--out``), count odd files and go on, and a damaged catalog must
stop with a fix, not a traceback.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zipfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scripted import Reply, Scripted
from stand_in import PLIVO_ID, RANGE, plivo_page, plivo_record, wav

from archiver.errors import SidecarError, UnsafeKeyError
from archiver.models import check_key, redact_url
from archiver.sidecars import parse_sidecar

UNTOUCHED = b"untouched: nothing may write here\n"
DAY = f"plivo/{PLIVO_ID}/2024/02/01"


@dataclass
class Archive:
    """A real archive (local folder or S3 prefix) of two recordings, with ways to plant files."""

    dest: str
    root: Path | None  # the folder, for a local archive
    s3: Any = None
    prefix: str = ""

    def put(self, key: str, data: bytes) -> None:
        if self.root is not None:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            self.s3.client.put_object(Bucket=self.s3.bucket, Key=self.prefix + key, Body=data)

    def get(self, key: str) -> bytes:
        if self.root is not None:
            return (self.root / key).read_bytes()
        return self.s3.client.get_object(Bucket=self.s3.bucket, Key=self.prefix + key)["Body"].read()

    def good(self) -> dict[str, Any]:
        return json.loads(self.get(f"{DAY}/r-0.json"))

    def plant(self, name: str, doc: dict[str, Any], key: str | None = None) -> str:
        key = key or f"{DAY}/{name}.json"
        self.put(key, json.dumps(doc).encode())
        return key


@pytest.fixture
def make_archive(cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config) -> Callable[..., Archive]:
    """Archive two Plivo recordings (r-0, r-1) from the scripted server into a local folder or
    an S3 prefix, through a real backfill. An export out of the archive goes to ``export/``
    of the same bucket."""

    def make(where: str = "local", s3: Any = None) -> Archive:
        plist = plivo_at(scripted)
        scripted.route("GET", plist, plivo_page([plivo_record(scripted, f"r-{i}") for i in range(2)]))
        scripted.route("GET", r"/media/.*", Reply(body=wav(), headers={"Content-Type": "audio/wav"}))
        if where == "local":
            archive = Archive(str(tmp_path / "archive"), tmp_path / "archive")
        else:
            archive = Archive(f"s3://{s3.bucket}/arch", None, s3, "arch/")
        r = cli("--config", quick_config(), "backfill", "--provider", "plivo", *RANGE, "--dest", archive.dest)
        assert r.exit_code == 0 and "archived=2" in r.output, r.output
        return archive

    return make


def _sentinel(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(UNTOUCHED)
    return path


def _climb(target: Path) -> str:
    """A relative key that climbs to / from any folder, then down to ``target``."""
    return "../" * 40 + str(target).lstrip("/")


def plant_escapes(archive: Archive, outside: Path) -> tuple[list[str], list[Path]]:
    """Sidecars whose keys reach outside: a file key with ``../``, an absolute file key, an
    unsafe recording id, a symlink out of a local archive, and (S3, where any key can exist)
    a sidecar whose own key climbs out. Returns the planted sidecar keys and the sentinels."""
    good = archive.good()
    body = wav()
    facts = {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    sentinels = [_sentinel(outside / "climb.txt"), _sentinel(outside / "absolute.txt")]
    planted = []

    def sidecar(rid: str, file_key: str, **file_over: Any) -> dict[str, Any]:
        doc = json.loads(json.dumps(good))
        doc["recording"]["recording_id"] = rid
        doc["files"][0].update(key=file_key, **(facts | file_over))
        return doc

    climb = _climb(sentinels[0])
    if archive.root is None:  # in S3 the object can exist: an export would copy it out
        archive.put(climb, body)
    planted.append(archive.plant("evil-climb", sidecar("evil-climb", climb)))
    planted.append(archive.plant("evil-abs", sidecar("evil-abs", str(sentinels[1]))))
    archive.put(f"{DAY}/evil-id.wav", body)
    planted.append(archive.plant("evil-id", sidecar("../../evil-id", f"{DAY}/evil-id.wav")))
    if archive.root is not None:
        secret = outside / "secret.txt"
        secret.write_bytes(b"a file outside the archive that no export may carry\n")
        (archive.root / DAY / "evil-link.wav").symlink_to(secret)
        facts_link = {
            "bytes": secret.stat().st_size,
            "sha256": hashlib.sha256(secret.read_bytes()).hexdigest(),
        }
        planted.append(archive.plant("evil-link", sidecar("evil-link", f"{DAY}/evil-link.wav", **facts_link)))
    else:
        own = _sentinel(outside / "own.json")
        doc = sidecar("evil-own", f"{DAY}/r-1.wav")
        planted.append(archive.plant("evil-own", doc, key=f"{DAY}/" + _climb(own)))
        sentinels.append(own)
    return planted, sentinels


def _exported_names(out: str, s3: Any, tmp_path: Path) -> list[str]:
    if out.endswith(".zip"):
        with zipfile.ZipFile(out) as zf:
            return zf.namelist()
    if out.startswith("s3://"):
        listing = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix="export/")
        return [o["Key"].removeprefix("export/") for o in listing.get("Contents", [])]
    root = Path(out).resolve()
    names = []
    for p in Path(out).rglob("*"):
        assert p.resolve().is_relative_to(root), p
        if p.is_file():
            names.append(p.relative_to(out).as_posix())
    return names


def _read_exported(out: str, s3: Any, name: str) -> bytes:
    if out.endswith(".zip"):
        with zipfile.ZipFile(out) as zf:
            return zf.read(name)
    if out.startswith("s3://"):
        return s3.client.get_object(Bucket=s3.bucket, Key="export/" + name)["Body"].read()
    return (Path(out) / name).read_bytes()


# Test names stay short: the s3 fixture names its bucket after the first 40 characters of the
# test id, and each parametrisation needs a bucket of its own.
@pytest.mark.parametrize("source", ["local", "s3"])
@pytest.mark.parametrize("kind", ["folder", "zip", "s3"])
def test_export_escapes(cli, tmp_path: Path, make_archive, s3, source: str, kind: str) -> None:
    archive = make_archive(source, s3)
    planted, sentinels = plant_escapes(archive, tmp_path / "outside")
    out = {"folder": str(tmp_path / "out" / "x"), "zip": str(tmp_path / "out" / "x.zip")}.get(
        kind, f"s3://{s3.bucket}/export"
    )
    r = cli("export", "--dest", archive.dest, "--out", out)
    assert r.exit_code == 1, r.output
    for path in sentinels:
        assert path.read_bytes() == UNTOUCHED, path
    for key in planted:
        assert f"left out unsafe sidecar {key}" in r.stderr
    assert "exported recordings=2 files=2" in r.output and f"excluded={len(planted)}" in r.output
    names = _exported_names(out, s3, tmp_path)
    for name in names:
        assert not name.startswith("/") and ".." not in name.split("/"), name
    assert sorted(n for n in names if "evil" in n) == []
    custody = json.loads(_read_exported(out, s3, "CUSTODY.json"))
    assert sorted(x["sidecar"] for x in custody["excluded"]) == sorted(planted)
    assert {x["kind"] for x in custody["excluded"]} == {"unsafe"}
    # What was exported checks out: every SHA256SUMS line, as sha256sum -c would.
    for line in _read_exported(out, s3, "SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(_read_exported(out, s3, name)).hexdigest() == digest
    rows = json.loads(_read_exported(out, s3, "manifest.json"))
    assert sorted(row["recording_id"] for row in rows) == ["r-0", "r-1"]


@pytest.mark.parametrize("source", ["local", "s3"])
def test_verify_unsafe(cli, tmp_path: Path, make_archive, s3, source: str) -> None:
    archive = make_archive(source, s3)
    planted, sentinels = plant_escapes(archive, tmp_path / "outside")
    report = tmp_path / "verify.json"
    r = cli("verify", "--dest", archive.dest, "--report", str(report))
    assert r.exit_code == 1, r.output
    found = json.loads(report.read_text())
    unsafe = {f["key"] for f in found["findings"] if f["kind"] == "unsafe"}
    # A planted sidecar is unsafe itself, except the symlink: its sidecar is fine, its file is not.
    expected = {k for k in planted if "evil-link" not in k}
    if archive.root is not None:
        expected.add(f"{DAY}/evil-link.wav")
    assert unsafe == expected
    assert f"unsafe={len(expected)}" in r.output
    assert found["recordings"] == 2 + (1 if archive.root is not None else 0)  # r-0, r-1 (+ the link's)
    assert not [f for f in found["findings"] if f["kind"] in ("altered", "missing")]
    for path in sentinels:
        assert path.read_bytes() == UNTOUCHED


@pytest.mark.parametrize("source", ["local", "s3"])
def test_transcode_reindex_unsafe(cli, tmp_path: Path, make_archive, s3, source: str) -> None:
    archive = make_archive(source, s3)
    planted, sentinels = plant_escapes(archive, tmp_path / "outside")
    report = tmp_path / "transcode.json"
    r = cli("transcode", "--dest", archive.dest, "--profile", "wav-pcm16-8k", "--report", str(report))
    assert r.exit_code == 1, r.output
    failures = json.loads(report.read_text())["failures"]
    for key in planted:  # each named by its sidecar
        assert any(f"unsafe sidecar {key}" in f["error"] for f in failures), (key, failures)
    assert len(failures) == len(planted)
    for rid in ("r-0", "r-1"):
        assert any(
            f["profile"] == "wav-pcm16-8k" for f in json.loads(archive.get(f"{DAY}/{rid}.json"))["files"]
        )
    for path in sentinels:
        assert path.read_bytes() == UNTOUCHED

    catalog = tmp_path / "rebuilt.db"
    r = cli("reindex", "--dest", archive.dest, "--catalog", str(catalog))
    assert r.exit_code == 1, r.output
    unsafe_ids = len([k for k in planted if "evil-link" not in k])  # the link's sidecar itself is valid
    assert f"unsafe={unsafe_ids}" in r.output
    with closing(sqlite3.connect(catalog)) as db:
        rows = db.execute("SELECT recording_id FROM recordings").fetchall()
    assert all(".." not in rid and "/" not in rid for (rid,) in rows)
    assert {"r-0", "r-1"} <= {rid for (rid,) in rows}


# --- 3.10: odd .json files are counted, never a crash -------------------------------------


def plant_odd(archive: Archive) -> list[str]:
    good = archive.good()
    no_files = {k: v for k, v in good.items() if k != "files"}
    text = json.dumps(good).encode()
    odd = {
        "no-files": json.dumps(no_files).encode(),
        "files-string": json.dumps(good | {"files": "r-0.wav"}).encode(),
        "top-list": json.dumps([good]).encode(),
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "bad-utf8": text.replace(b'"r-0"', b'"r-\xff\xfe0"', 1),
        "empty": b"",
        "recording-string": json.dumps(good | {"recording": "r-0"}).encode(),
        "file-no-sha": json.dumps(good | {"files": [{**good["files"][0], "sha256": None}]}).encode(),
    }
    keys = []
    for name, body in odd.items():
        keys.append(f"{DAY}/{name}.json")
        archive.put(keys[-1], body)
    return keys


def test_odd_json_is_unreadable_and_every_command_goes_on(cli, tmp_path: Path, make_archive) -> None:
    archive = make_archive()
    odd = plant_odd(archive)
    (archive.root / "notes.json").write_text('{"not": "a sidecar"}')  # not ours: passed over

    report = tmp_path / "verify.json"
    r = cli("verify", "--dest", archive.dest, "--report", str(report))
    assert r.exit_code == 1, r.output
    findings = json.loads(report.read_text())["findings"]
    assert sorted(f["key"] for f in findings if f["kind"] == "unreadable") == sorted(odd)
    assert f"unreadable={len(odd)}" in r.output and "recordings=2 files=2" in r.output

    out = tmp_path / "export"
    r = cli("export", "--dest", archive.dest, "--out", str(out))
    assert r.exit_code == 1, r.output
    assert "exported recordings=2 files=2" in r.output
    for key in odd:
        assert f"left out unreadable sidecar {key}" in r.stderr
    custody = json.loads((out / "CUSTODY.json").read_text())
    assert sorted(x["sidecar"] for x in custody["excluded"]) == sorted(odd)

    r = cli("reindex", "--dest", archive.dest, "--catalog", str(tmp_path / "c.db"))
    assert r.exit_code == 1, r.output
    assert f"reindexed=2 unreadable={len(odd)} unsafe=0" in r.output


@pytest.mark.parametrize(
    "body, why",
    [
        (b"", "empty"),
        (b"[1]", "not an object"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"schema": "archiver.sidecar/1", "recording": \xff}', "not UTF-8"),
        (b'{"schema": "archiver.sidecar/9"}', "newer archiver"),
    ],
)
def test_parse_sidecar_names_what_is_wrong(body: bytes, why: str) -> None:
    with pytest.raises(SidecarError, match=why) as caught:
        parse_sidecar("a/b.json", body)
    assert caught.value.kind == "unreadable"


@pytest.mark.parametrize("key", ["../x", "/etc/x", "a//b", "a/./b", "a/.hidden", "a/b\\c", "", "a/b/"])
def test_check_key_refuses_what_could_leave_a_folder(key: str) -> None:
    with pytest.raises(UnsafeKeyError):
        check_key("key", key)


# --- 2.4: provider_record keeps the record, not its credentials ------------------------------


def test_provider_record_urls_lose_user_info_and_signatures(
    cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config
) -> None:
    plist = plivo_at(scripted)
    host = scripted.url.removeprefix("http://")
    url = (
        f"http://user:pw-Vq7@{host}/media/x.wav?X-Amz-Signature=sig-Qx81&foo=1"
        "&X-Amz-Credential=AKIAHOSTILE%2F20240201&X-Amz-Security-Token=tok-Lm3&X-Amz-Expires=600"
    )
    record = plivo_record(scripted, "r-url", recording_url=url)
    record["links"] = {"mirror": [f"https://u2:pw2-Hh4@{host}/m.wav?token=tok-Zz9&Signature=sig-Ww2"]}
    scripted.route("GET", plist, plivo_page([record]))
    scripted.route("GET", r"/media/x\.wav", Reply(body=wav(), headers={"Content-Type": "audio/wav"}))
    dest = tmp_path / "a"
    r = cli("--config", quick_config(), "backfill", "--provider", "plivo", *RANGE, "--dest", str(dest))
    assert r.exit_code == 0 and "archived=1" in r.output, r.output
    text = (dest / DAY / "r-url.json").read_text()
    for secret in ("pw-Vq7", "sig-Qx81", "AKIAHOSTILE", "tok-Lm3", "pw2-Hh4", "tok-Zz9", "sig-Ww2"):
        assert secret not in text, secret
    doc = json.loads(text)
    kept = doc["provider_record"]
    assert kept["recording_url"] == (
        f"http://{host}/media/x.wav?X-Amz-Signature=REDACTED&foo=1"
        "&X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED&X-Amz-Expires=600"
    )
    assert kept["links"]["mirror"] == [f"https://{host}/m.wav?token=REDACTED&Signature=REDACTED"]
    assert {k: v for k, v in kept.items() if k not in ("recording_url", "links")} == {
        k: v for k, v in record.items() if k not in ("recording_url", "links")
    }
    assert doc["source"]["media_url"] == f"http://{host}/media/x.wav"


def test_redact_url_keeps_what_is_not_a_credential() -> None:
    same = ["plain text", "sip:alice@example.com", "https://h/a?b=1&c", "/v1/Account/MA1/Recording/r/"]
    for value in same:
        assert redact_url(value) == value
    assert redact_url("/v1/x/?TOKEN=t&b=2") == "/v1/x/?TOKEN=REDACTED&b=2"
    assert redact_url("https://a:b@[::1]:8443/p#f") == "https://[::1]:8443/p#f"


# --- 3.11: a damaged catalog stops with the fix, and reindex applies it ------------------------


def test_damaged_catalog_exits_2_and_reindex_rebuilds_it(
    cli, tmp_path: Path, scripted: Scripted, plivo_at, quick_config, freeze
) -> None:
    plist = plivo_at(scripted)
    scripted.route("GET", plist, plivo_page([plivo_record(scripted, f"r-{i}") for i in range(2)]))
    scripted.route("GET", r"/media/.*", Reply(body=wav(), headers={"Content-Type": "audio/wav"}))
    dest, catalog = tmp_path / "a", tmp_path / "state" / "cat.db"
    config = quick_config()
    backfill = ("--config", config, "backfill", "--provider", "plivo", *RANGE, "--dest", str(dest))
    r = cli(*backfill, "--catalog", str(catalog))
    assert r.exit_code == 0 and "archived=2" in r.output, r.output
    assert not Path(f"{catalog}-wal").exists()  # checkpointed on close: the file is the whole db
    # Keep the header page, damage every page after it.
    data = bytearray(catalog.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) > page
    data[page:] = bytes((i * 37 + 11) % 256 for i in range(len(data) - page))
    catalog.write_bytes(bytes(data))
    damaged = bytes(data)

    for args in (
        backfill + ("--catalog", str(catalog)),
        (
            "--config",
            config,
            "run",
            "--provider",
            "plivo",
            "--dest",
            str(dest),
            "--catalog",
            str(catalog),
            "--since",
            "2024-02-01",
        ),
        (
            "--config",
            config,
            "fetch",
            "--provider",
            "plivo",
            "r-0",
            "--dest",
            str(dest),
            "--catalog",
            str(catalog),
        ),
    ):
        r = cli(*args)
        assert r.exit_code == 2, (args, r.output)
        assert f"catalog {catalog} is damaged" in r.stderr and "archiver reindex" in r.stderr
        assert "Traceback" not in r.output
    # verify and export read the sidecars only (the truth): a damaged index does not stop them.
    assert cli("verify", "--dest", str(dest)).exit_code == 0
    assert cli("export", "--dest", str(dest), "--out", str(tmp_path / "x.zip")).exit_code == 0

    freeze()
    r = cli("reindex", "--dest", str(dest), "--catalog", str(catalog))
    assert r.exit_code == 0, r.output
    aside = Path(f"{catalog}.corrupt-20260615T133711Z")
    assert aside.read_bytes() == damaged  # kept for inspection
    assert f"moved the damaged catalog to {aside}" in r.stderr and "reindexed=2" in r.output
    with closing(sqlite3.connect(catalog)) as db:
        assert db.execute("PRAGMA quick_check").fetchone() == ("ok",)

    media = len(scripted.hits(r"/media/.*"))
    r = cli(*backfill, "--catalog", str(catalog))
    assert r.exit_code == 0 and "archived=0 skipped=2" in r.output, r.output
    assert len(scripted.hits(r"/media/.*")) == media  # nothing downloaded again


def test_a_catalog_that_is_not_a_database_is_damaged_too(cli, tmp_path: Path, freeze) -> None:
    dest, catalog = tmp_path / "a", tmp_path / "cat.db"
    dest.mkdir()
    catalog.write_bytes(b"this is no SQLite file\n" * 300)
    freeze()
    r = cli("reindex", "--dest", str(dest), "--catalog", str(catalog))
    assert r.exit_code == 0 and "reindexed=0" in r.output, r.output
    assert f"catalog {catalog} is damaged (file is not a database)" in r.stderr
    assert Path(f"{catalog}.corrupt-20260615T133711Z").read_bytes().startswith(b"this is no SQLite")
    with closing(sqlite3.connect(catalog)) as db:
        assert db.execute("PRAGMA quick_check").fetchone() == ("ok",)
