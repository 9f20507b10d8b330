"""Plivo as the simulator serves it: the Recording API (7-day default search, 30-day and
limit 20 caps, ``meta.next`` without the filters, newest first, one object repeated) and the
media host on its own origin, which needs no credentials and records any it is sent.

Listing pages in one of the three paging modes a Plivo deployment may serve
(``Simulator(plivo_paging=...)``): ``offset`` (legacy: ``meta.next`` carries ``offset=N``),
``cursor`` (``meta.next`` carries ``limit`` and an opaque ``cursor``, bound to the filters it was
made for, so a cursor sent with other filters is a 400; an offset sent is ignored, so an
offset-only walk gets page 1 again and again) and ``hybrid`` (cursor, but an offset sent beside
a cursor is still applied: a client that keeps sending ``offset=0`` is pinned to page 1)."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

from archiver.sim import data
from archiver.sim.handler import Handler


class PlivoRoutes(Handler):
    def _plivo_rate_limited(self, hint: bool) -> None:
        self._plivo_error(429, "too many requests", {"Retry-After": "0"} if hint else None)

    def _plivo_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.send_json(status, {"api_id": str(uuid.uuid4()), "error": message}, headers)

    def _plivo(self, method: str, account: str, rec_id: str | None, query: dict[str, list[str]]) -> None:
        if self.basic_auth() != (data.PLIVO_AUTH_ID, data.PLIVO_AUTH_TOKEN) or account != data.PLIVO_AUTH_ID:
            self.sim.count("plivo.unauthorized")
            return self._plivo_error(401, "authentication failed")
        wait = self.sim.rate_limited("plivo", "api")
        if wait is not None:
            self.sim.count("plivo.ratelimited")
            return self._plivo_error(429, "too many requests", {"Retry-After": str(max(1, round(wait)))})
        scope = "list" if rec_id is None else "get"
        self.sim.count(f"plivo.{scope}.requests")
        if self.api_fault(self.sim.plan.take(scope, None), "plivo", self._plivo_rate_limited):
            return None
        if rec_id is None:
            if method != "GET":
                return self._plivo_error(405, "method not allowed")
            self.sim.count("plivo.list")
            return self._plivo_list(account, query)
        found = self.sim.get("plivo", rec_id)
        if found is None:
            return self._plivo_error(404, "not found")
        if method == "DELETE":
            self.sim.count("plivo.delete")
            self.sim.deleted.add(rec_id)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.sim.count("plivo.get")
        return self.send_json(200, {"api_id": str(uuid.uuid4()), **found.doc})

    def _plivo_list(self, account: str, query: dict[str, list[str]]) -> None:
        q = {k: v[0] for k, v in query.items()}
        mode = self.sim.plivo_paging
        try:
            limit = int(q.get("limit", "20"))
            offset = int(q.get("offset", "0"))
            bounds = {
                op: _plivo_time(q[f"add_time__{op}"])
                for op in ("gt", "gte", "lt", "lte")
                if f"add_time__{op}" in q
            }
        except ValueError as exc:
            return self._plivo_error(400, f"invalid parameter: {exc}")
        if not 1 <= limit <= 20 or offset < 0:
            return self._plivo_error(400, "limit must be between 1 and 20")
        filters = _filters(q)
        if mode == "offset":
            position = offset
        else:
            # Cursor deployments ignore an offset, unless (hybrid) it comes beside a cursor.
            position = 0
            if "cursor" in q:
                found = self.sim.plivo_cursors.get(q["cursor"])
                if found is None:
                    return self._plivo_error(400, "invalid cursor")
                position, made_for = found
                if made_for != filters:
                    return self._plivo_error(400, "the cursor was issued for other filters")
                if mode == "hybrid" and "offset" in q:
                    position = offset
        now = datetime.now(UTC)
        lower = bounds.get("gte") or bounds.get("gt")
        upper = bounds.get("lt") or bounds.get("lte") or now
        if lower is None:
            lower = now - timedelta(days=7)  # no filter: only the last 7 days are searched
        if upper - lower > timedelta(days=30):
            return self._plivo_error(400, "add_time range cannot be longer than 30 days")

        def keep(r: data.SimRecording) -> bool:
            added = r.extra["added"]
            if "gt" in bounds and not added > bounds["gt"]:
                return False
            if "gte" in bounds and not added >= bounds["gte"]:
                return False
            if "lt" in bounds and not added < bounds["lt"]:
                return False
            if "lte" in bounds and not added <= bounds["lte"]:
                return False
            if not bounds and added < lower:
                return False
            for field in ("call_uuid", "from_number", "to_number", "conference_name"):
                if field in q and r.doc.get(field) != q[field]:
                    return False
            return r.id not in self.sim.deleted

        items = sorted((r for r in self.sim.plivo if keep(r)), key=lambda r: r.extra["added"], reverse=True)
        docs = [r.doc for r in items]
        if len(docs) > 20:
            docs.insert(20, docs[19])  # one object repeated across the first page boundary
        page = docs[position : position + limit]
        self.sim.plivo_pages.append((filters, position))
        root = f"/v1/Account/{account}/Recording/"
        more = position + limit < len(docs)
        meta: dict[str, object] = {"limit": limit, "total_count": len(docs)}
        if mode == "offset":
            meta |= {
                "offset": position,
                "next": f"{root}?limit={limit}&offset={position + limit}" if more else None,
                "previous": f"{root}?limit={limit}&offset={max(0, position - limit)}" if position else None,
            }
        else:
            nxt = self._cursor(position + limit, filters) if more else None
            prev = self._cursor(max(0, position - limit), filters) if position else None
            meta |= {
                "offset": None,
                "next": f"{root}?limit={limit}&cursor={nxt}" if nxt else None,
                "previous": f"{root}?limit={limit}&cursor={prev}" if prev else None,
            }
        self.send_json(200, {"api_id": str(uuid.uuid4()), "meta": meta, "objects": page})

    def _cursor(self, position: int, filters: str) -> str:
        """An opaque cursor for ``position`` of the listing ``filters`` selects, remembered
        by the simulator; the same page under the same filters always gets the same one."""
        token = hashlib.sha256(f"{self.sim.seed}|{filters}|{position}".encode()).hexdigest()[:32]
        self.sim.plivo_cursors[token] = (position, filters)
        return token


def _filters(q: dict[str, str]) -> str:
    """The filters of a list request (all but the paging parameters), as one comparable text:
    what a cursor is bound to."""
    return "&".join(f"{k}={v}" for k, v in sorted(q.items()) if k not in ("limit", "offset", "cursor"))


def _plivo_time(text: str) -> datetime:
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"bad add_time {text!r}: use YYYY-MM-DD HH:MM[:ss[.uuuuuu]]")


class MediaHandler(Handler):
    """Plivo's media host: no auth needed, and any Authorization header is a leak."""

    def do_GET(self) -> None:
        if self.headers.get("Authorization"):
            self.sim.media_auth_seen.append(self.path)
        m = re.fullmatch(r"/recordings/([^/]+)\.(mp3|wav)", urlsplit(self.path).path)
        rec = None
        if m:
            name = unquote(m.group(1))
            rec = self.sim.get("plivo", name) or (
                self.sim.plivo[0] if name == "unsafe" and self.sim.plivo else None
            )
        self.sim.count("plivo.media.requests")
        fault = self.sim.plan.take("media", rec.id if rec else None)
        if rec is None or fault == "404":
            self.send_response(404)
            self.send_header("Content-Type", "application/xml")
            body = b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if fault in ("429", "429-bare", "500", "503"):
            self.send_response(int(fault[:3]))
            if fault == "429":
                self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.sim.count("plivo.media")
        ctype = "audio/mpeg" if rec.fmt == "mp3" else "audio/wav"
        self.send_body(self.sim.media_bytes(rec), ctype, fault)
