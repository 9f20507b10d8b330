"""Catapult v1 as the simulator serves it: recordings (Link-header pages with an opaque cursor,
short pages, no order, one item twice), one recording, its call, its media (auth required)."""

from __future__ import annotations

import base64
import time
from typing import Any

from archiver.sim import data
from archiver.sim.handler import Handler


class CatapultRoutes(Handler):
    def _catapult_rate_limited(self, hint: bool) -> None:
        # Catapult documents no Retry-After: X-RateLimit-Reset is the reset time in epoch ms.
        headers = {"X-RateLimit-Reset": str(int((time.time() + 0.2) * 1000))} if hint else {}
        self._catapult_error(429, "too-many-requests", "rate-limit-reached", headers=headers)

    def _catapult_error(
        self,
        status: int,
        category: str,
        code: str,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body: dict[str, Any] = {"category": category, "code": code, "details": []}
        if message:
            body["message"] = message
        self.send_json(status, body, headers)

    def _catapult(
        self, method: str, user: str, kind: str, item: str | None, query: dict[str, list[str]]
    ) -> None:
        if self.basic_auth() != (data.CATAPULT_TOKEN, data.CATAPULT_SECRET) or user != data.CATAPULT_USER:
            self.sim.count("catapult.unauthorized")
            return self._catapult_error(401, "unauthorized", "unauthorized", "Invalid credentials")
        if method != "GET":
            return self._catapult_error(405, "method-not-allowed", "method-not-allowed")
        scope = "media" if kind == "media" else ("list" if item is None and kind == "recordings" else "get")
        rec = None
        if kind == "media" and item:
            rec = self.sim.media_by_name(item)
        wait = self.sim.rate_limited("catapult", kind)
        if wait is not None:
            self.sim.count("catapult.ratelimited")
            reset_ms = int((time.time() + wait) * 1000)
            return self._catapult_error(
                429, "too-many-requests", "rate-limit-reached", headers={"X-RateLimit-Reset": str(reset_ms)}
            )
        self.sim.count(f"catapult.{scope}.requests")
        fault = self.sim.plan.take(scope, rec.id if rec else None)
        if self.api_fault(fault, "catapult", self._catapult_rate_limited):
            return None
        self.sim.count(f"catapult.{scope}")
        if kind == "recordings" and item is None:
            return self._catapult_list(query)
        if kind == "recordings":
            found = self.sim.get("catapult", item or "")
            if found is None:
                return self._catapult_error(404, "not-found", "recording-not-found", "Recording not found")
            return self.send_json(200, found.doc)
        if kind == "calls":
            call = next((r.extra["call"] for r in self.sim.catapult if r.extra["call_id"] == item), None)
            if call is None:
                return self._catapult_error(404, "not-found", "call-not-found", "Call not found")
            return self.send_json(200, call)
        if rec is None or rec.state != "complete" or fault == "404":
            return self._catapult_error(404, "not-found", "media-not-found", "Media not found")
        return self.send_body(self.sim.media_bytes(rec), "audio/wav", fault)

    def _catapult_list(self, query: dict[str, list[str]]) -> None:
        try:
            size = int(query.get("size", ["25"])[0])
            page = int(query.get("page", ["0"])[0])
            cursor = query.get("cursor", [None])[0]
            offset = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else page * size
        except (ValueError, UnicodeDecodeError):
            return self._catapult_error(400, "bad-request", "invalid-parameter", "bad page, size or cursor")
        if not 1 <= size <= 1000 or offset < 0:
            return self._catapult_error(400, "bad-request", "invalid-parameter", "size must be 1..1000")
        items = [r.doc for r in self.sim.catapult if r.id not in self.sim.deleted]
        if len(items) > 1:
            items.append(items[0])  # the same item on two pages
        # Short pages: every other page holds one item less, so only the server's cursor
        # knows where the next page starts.
        count = size - 1 if size > 2 and (offset // size) % 2 == 1 else size
        page_items = items[offset : offset + count]
        base = f"{self.sim.api_url}/v1/users/{data.CATAPULT_USER}/recordings"
        links = [f'<{base}?page=0&size={size}>; rel="first"']
        if offset + count < len(items):
            token = base64.urlsafe_b64encode(str(offset + count).encode()).decode()
            links.append(f'<{base}?size={size}&cursor={token}>; rel="next"')
        if offset > 0:
            links.append(f'<{base}?page={max(0, offset // size - 1)}&size={size}>; rel="previous"')
        self.send_json(200, page_items, {"Link": ", ".join(links)})
