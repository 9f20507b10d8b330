"""BagIt exports (validated by bagit-python) and the offline viewer every export holds
(checked in a real headless Chromium where one is installed, and as parsed HTML everywhere)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from archiver.compliance.export import mask_number
from archiver.sim import Simulator

RANGE = ["--since", "2024-01-01", "--until", "2024-03-01"]
HOSTILE = "</script><script>document.title='pwned'</script><img src=x onerror=alert(1)>&amp;"


@pytest.fixture
def archive(cli, tmp_path: Path, use_sim) -> tuple[Simulator, Path]:
    with Simulator(recordings=6, seed=41) as sim:
        use_sim(sim)
        dest = tmp_path / "arch"
        r = cli("backfill", "--provider", "plivo", *RANGE, "--dest", str(dest), "--transcode", "mp3-mono-32k")
        assert r.exit_code == 0, r.output
    return sim, dest


def sidecars(dest: Path) -> list[dict]:
    docs = [json.loads(p.read_text()) for p in sorted(dest.rglob("*.json"))]
    return [d for d in docs if isinstance(d, dict) and "recording" in d]


def validate(bag: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bagit", "--validate", str(bag)], capture_output=True, text=True, timeout=120
    )


def tags(bag: Path) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in (bag / "bag-info.txt").read_text().splitlines())


# --- BagIt --------------------------------------------------------------------------------


def test_bagit_folder_is_a_valid_bag_around_a_plain_export(cli, archive, tmp_path: Path) -> None:
    sim, dest = archive
    config = tmp_path / "archiver.toml"
    config.write_text('[export]\nsource_organization = "Acme Corp, Compliance"\n')
    out = tmp_path / "bag"
    r = cli(
        "--config",
        str(config),
        "export",
        "--dest",
        str(dest),
        "--out",
        str(out),
        "--format",
        "bagit",
        "--since",
        "2024-02-01",
        "--with-renditions",
    )
    assert r.exit_code == 0, r.output
    check = validate(out)
    assert check.returncode == 0, check.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "bag-info.txt",
        "bagit.txt",
        "data",
        "index.html",
        "manifest-sha256.txt",
        "tagmanifest-sha256.txt",
    ]
    assert (out / "bagit.txt").read_text() == "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    # The payload is a plain export: its own SHA256SUMS checks it, the viewer is a tag file.
    sums = subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=out / "data", capture_output=True
    )
    assert sums.returncode == 0, sums.stdout
    payload = sorted(str(p.relative_to(out)) for p in (out / "data").rglob("*") if p.is_file())
    listed = sorted(line.split("  ", 1)[1] for line in (out / "manifest-sha256.txt").read_text().splitlines())
    assert listed == payload
    tagged = {line.split("  ", 1)[1] for line in (out / "tagmanifest-sha256.txt").read_text().splitlines()}
    assert tagged == {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "index.html"}
    info = tags(out)
    custody = (out / "data" / "CUSTODY.json").read_bytes()
    assert info["Source-Organization"] == "Acme Corp, Compliance"
    assert info["External-Identifier"] == hashlib.sha256(custody).hexdigest()
    assert info["Bagging-Date"] == json.loads(custody)["created_at"][:10]
    assert info["Payload-Oxum"] == f"{sum((out / p).stat().st_size for p in payload)}.{len(payload)}"
    assert "since=2024-02-01T00:00:00Z" in info["Export-Selection"]
    assert "with_renditions=true" in info["Export-Options"]
    expected = {r.id for r in sim.plivo if r.started.isoformat() >= "2024-02-01"}
    assert {m["recording_id"] for m in json.loads((out / "data" / "manifest.json").read_text())} == expected
    # The validation is real: one flipped byte in the payload, or in the viewer, fails it.
    victim = out / next(p for p in payload if p.endswith(".mp3"))
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    assert validate(out).returncode != 0
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    (out / "index.html").write_text((out / "index.html").read_text().replace("Filter", "Filtr"))
    assert validate(out).returncode != 0


def test_bagit_zip_holds_one_bag_folder_that_validates(cli, archive, tmp_path: Path) -> None:
    _, dest = archive
    out = tmp_path / "audit-2024.zip"
    r = cli("export", "--dest", str(dest), "--out", str(out), "--format", "bagit")
    assert r.exit_code == 0, r.output
    assert "no [export] source_organization" in r.output  # said, and the field left out
    with zipfile.ZipFile(out) as zf:
        assert {name.split("/", 1)[0] for name in zf.namelist()} == {"audit-2024"}
        zf.extractall(tmp_path / "unzipped")
    bag = tmp_path / "unzipped" / "audit-2024"
    check = validate(bag)
    assert check.returncode == 0, check.stderr
    assert "Source-Organization" not in tags(bag)
    assert tags(bag)["Export-Selection"] == "all"
    assert not list(tmp_path.glob("*.part"))


def test_plain_export_is_unchanged_but_for_its_viewer(cli, archive, tmp_path: Path) -> None:
    _, dest = archive
    out = tmp_path / "plain"
    assert cli("export", "--dest", str(dest), "--out", str(out)).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    own = {"manifest.json", "manifest.csv", "CUSTODY.json", "CUSTODY-LOG.jsonl", "SHA256SUMS", "index.html"}
    expected = own | {m["key"] for m in manifest} | {str(p.relative_to(dest)) for p in dest.rglob("*.json")}
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == expected
    sums = (out / "SHA256SUMS").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in sums[-2:]] == ["CUSTODY.json", "index.html"]
    assert subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=out).returncode == 0


# --- the viewer, as HTML ------------------------------------------------------------------


class Page(HTMLParser):
    """What a browser would build from the page: elements, their attributes, the text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def plant(dest: Path, **fields: str) -> dict:
    """Rewrite one sidecar's ``recording`` fields (a provider's data is anything it sent)."""
    path = sorted(dest.rglob("*.json"))[0]
    doc = json.loads(path.read_text())
    doc["recording"].update(fields)
    path.write_text(json.dumps(doc))
    return doc


def test_hostile_values_render_as_text_in_a_page_that_asks_no_host(cli, archive, tmp_path: Path) -> None:
    _, dest = archive
    doc = plant(dest, from_number=HOSTILE, call_id=HOSTILE)
    out = tmp_path / "x"
    assert cli("export", "--dest", str(dest), "--out", str(out)).exit_code == 0
    text = (out / "index.html").read_text()
    page = Page(text)
    assert len(page.all("script")) == 1 and not page.all("img")  # the only script is ours
    assert sum(HOSTILE in t for t in page.text) == 2  # the number and the call id, shown verbatim
    script = text.split("<script>", 1)[1].split("</script>", 1)[0]
    assert doc["recording"]["recording_id"] not in script  # no value inside the script at all
    csp = next(a["content"] for a in page.all("meta") if a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in (csp or "") and "unsafe-inline" not in (csp or "")
    for attrs in page.tags:
        for name in ("src", "href"):
            value = attrs[1].get(name)
            if value is not None:  # relative paths only, and the icon that stops a favicon request
                assert value == "data:," or not urlparse(value).scheme and not value.startswith("//"), value


def test_masked_numbers_stay_masked_in_the_viewer(cli, archive, tmp_path: Path) -> None:
    _, dest = archive
    out = tmp_path / "m"
    number = next(d["recording"]["from_number"] for d in sidecars(dest) if d["recording"]["from_number"])
    r = cli("export", "--dest", str(dest), "--out", str(out), "--mask-numbers", "--number", number)
    assert r.exit_code == 0, r.output
    text = "".join(Page((out / "index.html").read_text()).text)
    assert number not in text and mask_number(number) in text
    for doc in sidecars(out):
        for n in (doc["recording"]["from_number"], doc["recording"]["to_number"]):
            assert not n or n not in text
    # Nor where the export says what it was asked for: CUSTODY.json and the custody event.
    assert number not in (out / "CUSTODY.json").read_text()
    assert not any(number in e.read_text() for e in (dest / "_custody").glob("*.jsonl"))


# --- the viewer, in a browser -------------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def dump_dom(tmp_path: Path, page: Path, fragment: str) -> str:
    """The page's DOM once loaded (``index.html#fragment``), from a real headless Chromium."""
    binary = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if binary is None:
        pytest.skip(f"no browser ({', '.join(BROWSERS)}) on PATH; on Debian: apt-get install chromium")
    profile = tmp_path / "chromium-profile"
    run = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"{page.as_uri()}#{fragment}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0 and "</html>" in run.stdout, run.stderr[-2000:]
    return run.stdout


ROW = re.compile(r"<tr( hidden=\"\")?>(.*?)</tr>", re.S)


def rows(dom: str) -> list[tuple[bool, str]]:
    """(shown, row markup) for each body row, in the page's order."""
    body = dom.split("<tbody>", 1)[1]
    return [(not hidden, inner) for hidden, inner in ROW.findall(body)]


@pytest.mark.parametrize("fmt", ["plain", "bagit"])
def test_viewer_in_a_browser_lists_plays_filters_and_sorts(cli, archive, tmp_path: Path, fmt: str) -> None:
    _, dest = archive
    out = tmp_path / "e"
    assert (
        cli("export", "--dest", str(dest), "--out", str(out), "--with-renditions", "--format", fmt).exit_code
        == 0
    )
    index = out / "index.html"
    docs = {d["recording"]["recording_id"]: d for d in sidecars(out / "data" if fmt == "bagit" else out)}
    target = sorted(docs)[0]
    dom = dump_dom(tmp_path, index, f"check&q={target[:13]}&sort=-duration")
    listed = rows(dom)
    assert len(listed) == len(docs)  # every exported recording has its row
    assert [inner for shown, inner in listed if shown] == [
        inner for _, inner in listed if f">{target}<" in inner
    ]  # the filter from the URL: only the one recording whose id starts so
    assert f'<span id="shown">1 of {len(docs)}</span>' in dom
    # Each player's source resolves to the exported file of that SHA-256, and plays.
    players = re.findall(
        r'<audio controls="" preload="metadata" src="([^"]+)"></audio>'
        r'<span class="state" data-state="(\w+)">',
        dom,
    )
    assert len(players) == 2 * len(docs) and {state for _, state in players} == {"ok"}
    for src, _ in players:
        path = Path(unquote(urlparse(urljoin(index.as_uri(), src)).path))
        assert path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() in dom
    assert f"{2 * len(docs)} of {2 * len(docs)} checked, 0 failed" in dom
    # Sorted by duration, longest first, as the fragment asked.
    durations = [float(re.findall(r'<td data-sort="([^"]*)"', inner)[4]) for _, inner in listed]
    assert durations == sorted(durations, reverse=True) and len(set(durations)) > 1
    # A file gone from the unpacked export is shown as missing.
    victim = next(Path(unquote(urlparse(urljoin(index.as_uri(), src)).path)) for src, _ in players)
    victim.unlink()
    dom = dump_dom(tmp_path, index, "check")
    assert dom.count('data-state="missing"') == 1 and f"of {2 * len(docs)} checked, 1 failed" in dom
    assert f'<span id="shown">{len(docs)} of {len(docs)}</span>' in dom


def test_hostile_values_stay_text_in_a_browser(cli, archive, tmp_path: Path) -> None:
    _, dest = archive
    plant(dest, from_number=HOSTILE)
    out = tmp_path / "h"
    assert cli("export", "--dest", str(dest), "--out", str(out)).exit_code == 0
    dom = dump_dom(tmp_path, out / "index.html", "q=onerror")
    assert re.search(r"<title>Call recordings export \w+</title>", dom)  # not 'pwned'
    assert dom.count("<script") == 1 and "<img" not in dom
    assert "&lt;/script&gt;&lt;script&gt;" in dom  # shown as text, and the filter finds it
    assert '<span id="shown">1 of 6</span>' in dom


def test_bagit_into_s3_validates_once_downloaded(cli, archive, tmp_path: Path, s3) -> None:
    _, dest = archive
    r = cli("export", "--dest", str(dest), "--out", f"s3://{s3.bucket}/bags/one", "--format", "bagit")
    assert r.exit_code == 0, r.output
    local = tmp_path / "one"
    types = {}
    for obj in s3.client.list_objects_v2(Bucket=s3.bucket, Prefix="bags/one/")["Contents"]:
        got = s3.client.get_object(Bucket=s3.bucket, Key=obj["Key"])
        path = local / obj["Key"][len("bags/one/") :]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(got["Body"].read())
        types[path.name] = got["ContentType"]
    check = validate(local)
    assert check.returncode == 0, check.stderr
    assert types["index.html"].startswith("text/html") and types["bag-info.txt"].startswith("text/plain")
