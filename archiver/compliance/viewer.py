"""``index.html``: an auditor's offline viewer of an export, one self-contained page.

The page lists every exported recording (start, numbers, direction, duration, provider, ids,
each file's SHA-256) with an ``<audio>`` player per file by relative path, a text filter,
sortable columns and a header with the selection and the custody summary. It makes no request
to any host: CSS and JS are inline, and its Content-Security-Policy allows those two blocks
(by hash), media from the export itself and nothing else.

Every value comes from a sidecar, and sidecars hold provider data: all of it is HTML-escaped
into the markup, and none of it is inside the script, which is a constant (so a ``</script>``
in a caller name is text, never the end of the script). The state of the filter and the sort
lives in the URL fragment (``index.html#q=alice&sort=-start``): a link an auditor can share,
and the way a headless browser is told what to show. ``#check`` loads every player's media and
marks each file ``ok`` or ``missing``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

Mask = Callable[[str | None], str | None]


@dataclass(frozen=True)
class FileView:
    """One exported file of a recording, as its sidecar lists it."""

    role: str
    key: str
    bytes: int
    sha256: str
    duration_seconds: Any


@dataclass(frozen=True)
class RecordingView:
    """One exported recording: what a row of the page shows. Values are as the sidecar has
    them (any JSON type: a sidecar is checked for what the export indexes, not for these)."""

    provider: Any
    account: Any
    recording_id: Any
    call_id: Any
    started_at: Any
    from_number: Any
    to_number: Any
    direction: Any
    duration_seconds: Any
    files: tuple[FileView, ...]


def recording_view(
    doc: Mapping[str, Any], files: Sequence[Mapping[str, Any]], mask: Mask | None
) -> RecordingView:
    """The row of a validated sidecar ``doc`` whose ``files`` are exported; numbers through
    ``mask`` (``--mask-numbers``) when given."""
    rec = doc["recording"]
    views = tuple(
        FileView(f["role"], f["key"], f["bytes"], f["sha256"], f.get("duration_seconds")) for f in files
    )
    original = next((f for f in views if f.role == "original"), None)
    duration = original.duration_seconds if original else None
    if not _is_number(duration):
        duration = rec.get("provider_duration_seconds")
    numbers = [rec.get("from_number"), rec.get("to_number")]
    if mask is not None:
        numbers = [mask(n) if isinstance(n, str) else n for n in numbers]
    return RecordingView(
        provider=rec.get("provider"),
        account=rec.get("account"),
        recording_id=rec.get("recording_id"),
        call_id=rec.get("call_id"),
        started_at=rec.get("started_at"),
        from_number=numbers[0],
        to_number=numbers[1],
        direction=rec.get("direction"),
        duration_seconds=duration,
        files=views,
    )


def render_index(
    recordings: Iterable[RecordingView],
    custody: Mapping[str, Any],
    *,
    export_id: str,
    base: str = "",
    mask: Mask | None = None,
    check_with: str = "sha256sum -c SHA256SUMS",
) -> bytes:
    """The page, UTF-8. ``base`` is the path from the page to the exported keys (``data/`` in a
    bag); ``custody`` is the export's ``CUSTODY.json`` document and ``export_id`` its SHA-256.
    The selection's ``--number`` is shown through ``mask`` when given."""
    rows = [_row(r, base) for r in recordings]
    head = _header(custody, export_id, mask, check_with)
    columns = "".join(
        f'<th data-col="{col}"{" data-numeric" if numeric else ""}>'
        f'<button type="button">{label}</button></th>'
        for col, label, numeric in COLUMNS
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_csp()}">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>Call recordings export {_e(export_id[:12])}</title>
<style>{CSS}</style>
</head>
<body>
{head}
<p class="tools"><label>Filter <input id="filter" type="search" autocomplete="off"
 placeholder="number, id, date, SHA-256..."></label> <span id="shown">{len(rows)} of {len(rows)}</span>
 recordings shown <button type="button" id="check">Check every file plays</button>
 <span id="checked"></span></p>
<table id="recordings">
<thead><tr>{columns}</tr></thead>
<tbody>
{"".join(rows)}</tbody>
</table>
<script>{SCRIPT}</script>
</body>
</html>
"""
    return page.encode("utf-8")


COLUMNS = (
    ("start", "Start (UTC)", False),
    ("from", "From", False),
    ("to", "To", False),
    ("direction", "Direction", False),
    ("duration", "Duration (s)", True),
    ("provider", "Provider", False),
    ("ids", "Recording / call id", False),
    ("files", "Files (SHA-256)", False),
)


def _row(r: RecordingView, base: str) -> str:
    duration = r.duration_seconds
    if _is_number(duration):
        shown, sort = f"{float(duration):.1f}", repr(float(duration))
    else:
        shown, sort = _text(duration), ""
    ids = (
        f'<span class="id">{_e(_text(r.recording_id))}</span>'
        f'<span class="sub">call {_e(_text(r.call_id))}</span>'
        f'<span class="sub">account {_e(_text(r.account))}</span>'
    )
    files = "".join(_file(f, base) for f in r.files)
    cells = (
        _cell(_text(r.started_at)),
        _cell(_text(r.from_number)),
        _cell(_text(r.to_number)),
        _cell(_text(r.direction)),
        f'<td data-sort="{_e(sort)}">{_e(shown)}</td>',
        _cell(_text(r.provider)),
        f'<td data-sort="{_e(_text(r.recording_id))}">{ids}</td>',
        f'<td data-sort="{_e(r.files[0].sha256 if r.files else "")}">{files}</td>',
    )
    return f"<tr>{''.join(cells)}</tr>\n"


def _file(f: FileView, base: str) -> str:
    href = _e(base + quote(f.key))
    return (
        f'<div class="file"><audio controls preload="none" src="{href}"></audio>'
        f'<span class="state"></span>'
        f'<span class="sub">{_e(f.role)}, {f.bytes} bytes: <a href="{href}">{_e(f.key)}</a></span>'
        f"<code>{_e(f.sha256)}</code></div>"
    )


def _cell(value: str) -> str:
    return f'<td data-sort="{_e(value)}">{_e(value)}</td>'


def _header(custody: Mapping[str, Any], export_id: str, mask: Mask | None, check_with: str) -> str:
    counts = custody.get("counts") or {}
    selection = dict(custody.get("selection") or {})
    if mask is not None and isinstance(selection.get("number"), str):
        selection["number"] = mask(selection["number"])
    chosen = ", ".join(f"{k} {_text(v)}" for k, v in selection.items() if v is not None)
    options = custody.get("options") or {}
    facts = [
        ("Export id", f"{export_id} (the SHA-256 of CUSTODY.json)"),
        ("Selection", chosen or "every archived recording"),
        ("Options", ", ".join(f"{k} {_text(v)}" for k, v in options.items())),
        ("Source", _text(custody.get("source"))),
        ("Created", _text(custody.get("created_at"))),
        ("By", f"{_text(custody.get('run_by'))} on {_text(custody.get('host'))}"),
        ("Tool", f"archiver {_text(custody.get('tool_version'))}"),
        (
            "Counts",
            ", ".join(f"{_text(counts.get(k))} {k}" for k in ("recordings", "files", "bytes", "excluded")),
        ),
        ("manifest.json SHA-256", _text(custody.get("manifest_json_sha256"))),
        ("manifest.csv SHA-256", _text(custody.get("manifest_csv_sha256"))),
        ("Integrity", f"{check_with} checks every file; CUSTODY.json is the chain-of-custody record"),
    ]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    excluded = custody.get("excluded") or []
    left_out = ""
    if excluded:
        items = "".join(
            f"<li>{_e(_text(x.get('kind')))} sidecar {_e(_text(x.get('sidecar')))}"
            f"{' (recording ' + _e(_text(x.get('recording_id'))) + ')' if x.get('recording_id') else ''}"
            f": {_e(_text(x.get('detail')))}</li>"
            for x in excluded
            if isinstance(x, Mapping)
        )
        left_out = f'<section id="excluded"><h2>Left out ({len(excluded)})</h2><ul>{items}</ul></section>'
    return f'<header><h1>Call recordings export</h1><dl id="custody">{dl}</dl>{left_out}</header>'


def _text(value: Any) -> str:
    """Any JSON value as the page shows it: strings as they are, nothing for null, the rest
    as JSON (a number, or whatever a hostile sidecar put there)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _csp() -> str:
    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    return (
        f"default-src 'none'; script-src {digest(SCRIPT)}; style-src {digest(CSS)}; "
        "media-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
    )


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111}
h1{font-size:1.4em;margin:0 0 .5em}h2{font-size:1.1em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:0 0 1em}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
#excluded{border-left:4px solid #b00;padding-left:.8em}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
td:first-child{white-space:nowrap}
th button{font:inherit;font-weight:600;border:0;background:none;cursor:pointer;padding:0}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
.sub{display:block;color:#555;font-size:.9em;overflow-wrap:anywhere}
.id{display:block;overflow-wrap:anywhere}
.file{margin-bottom:.5em}.file audio{display:block;height:2em;max-width:20em}
code{font-size:.8em;overflow-wrap:anywhere}
.state[data-state=ok]{color:#060}.state[data-state=missing]{color:#b00;font-weight:600}
.tools{margin:.5em 0}#filter{min-width:20em}
"""

SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("recordings");
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var filter = document.getElementById("filter");
  var shown = document.getElementById("shown");
  var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
  var state = {q: "", sort: ""};

  function read() {
    var params = new URLSearchParams(location.hash.slice(1));
    state.q = params.get("q") || "";
    state.sort = params.get("sort") || "";
    filter.value = state.q;
    return params.has("check");
  }
  function write() {
    var params = new URLSearchParams();
    if (state.q) { params.set("q", state.q); }
    if (state.sort) { params.set("sort", state.sort); }
    var fragment = params.toString();
    history.replaceState(null, "", fragment ? "#" + fragment : location.pathname + location.search);
  }
  function apply() {
    var terms = state.q.toLowerCase().split(/\\s+/).filter(Boolean);
    var count = 0;
    rows.forEach(function (row, i) {
      var match = terms.every(function (term) { return texts[i].indexOf(term) >= 0; });
      row.hidden = !match;
      if (match) { count += 1; }
    });
    shown.textContent = count + " of " + rows.length;
    var descending = state.sort.charAt(0) === "-";
    var column = state.sort.replace(/^-/, "");
    var index = -1;
    heads.forEach(function (th, i) {
      if (th.getAttribute("data-col") === column) {
        index = i;
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
    var order = rows.slice();
    if (index >= 0) {
      var numeric = heads[index].hasAttribute("data-numeric");
      var key = function (row) {
        var value = row.cells[index].getAttribute("data-sort");
        if (!numeric) { return value; }
        return value === "" ? -Infinity : parseFloat(value);
      };
      order.sort(function (a, b) {
        var x = key(a), y = key(b);
        var c = x < y ? -1 : (x > y ? 1 : 0);
        return descending ? -c : c;
      });
    }
    order.forEach(function (row) { body.appendChild(row); });
  }
  function check() {
    var players = Array.prototype.slice.call(document.querySelectorAll("audio"));
    var done = 0, failed = 0;
    var report = document.getElementById("checked");
    players.forEach(function (audio) {
      var mark = audio.nextElementSibling;
      var settle = function (ok) {
        if (mark.hasAttribute("data-state")) { return; }
        mark.setAttribute("data-state", ok ? "ok" : "missing");
        var length = isFinite(audio.duration) ? ", " + audio.duration.toFixed(1) + " s" : "";
        mark.textContent = ok ? "plays" + length : "missing or not playable";
        done += 1;
        if (!ok) { failed += 1; }
        report.textContent = done + " of " + players.length + " checked, " + failed + " failed";
      };
      audio.addEventListener("loadedmetadata", function () { settle(true); });
      audio.addEventListener("error", function () { settle(false); }, true);
      audio.preload = "metadata";
      audio.load();
    });
  }
  heads.forEach(function (th) {
    th.querySelector("button").addEventListener("click", function () {
      var column = th.getAttribute("data-col");
      state.sort = state.sort === column ? "-" + column : column;
      write();
      apply();
    });
  });
  filter.addEventListener("input", function () { state.q = filter.value; write(); apply(); });
  window.addEventListener("hashchange", function () { read(); apply(); });
  document.getElementById("check").addEventListener("click", check);
  var checkNow = read();
  apply();
  if (checkNow) { check(); }
})();
"""
