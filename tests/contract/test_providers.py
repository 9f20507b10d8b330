"""The Provider suite: both clients against the simulator over loopback HTTP."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from archiver.cli.wiring import build_provider
from archiver.config import load_settings
from archiver.errors import AuthError, ListingIncomplete, NotFoundError, ProviderUnavailable
from archiver.media.fetch import fetch_media
from archiver.providers.base import Dedupe, PageWalk, Provider
from archiver.providers.http import make_client
from archiver.retry import RetryPolicy
from archiver.sim import Simulator

SINCE = datetime(2024, 1, 1, tzinfo=UTC)
UNTIL = datetime(2024, 3, 1, tzinfo=UTC)
PLIVO_PAGING = ["offset", "cursor", "hybrid"]
# Every client under test: Catapult, and Plivo under each paging mode a deployment may serve.
CLIENTS = [
    pytest.param("catapult", "offset", id="catapult"),
    *(pytest.param("plivo", mode, id=f"plivo-{mode}") for mode in PLIVO_PAGING),
]


@pytest.fixture
def paging() -> str:
    """The simulator's Plivo paging mode; tests parametrised over CLIENTS override it."""
    return "offset"


@pytest.fixture
def sim(paging: str) -> Iterator[Simulator]:
    """The shared simulator (as tests/conftest.py's), serving Plivo in the test's paging mode."""
    with Simulator(recordings=30, seed=7, stall_seconds=5.0, plivo_paging=paging) as s:
        yield s


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(timeout=2.0) as c:
        yield c


def provider_for(sim: Simulator, name: str, client: httpx.Client, **env: str) -> Provider:
    settings = load_settings(
        None, sim.env() | {"CATAPULT_REQUESTS_PER_SECOND": "1000", "PLIVO_REQUESTS_PER_SECOND": "1000", **env}
    )
    if name == "catapult":
        from dataclasses import replace

        settings = replace(settings, catapult=replace(settings.catapult, page_size=4))  # many pages
    return build_provider(settings, name, client)


def expected_ids(sim: Simulator, name: str, since: datetime = SINCE, until: datetime = UNTIL) -> set[str]:
    if name == "catapult":
        return {r.id for r in sim.catapult if since <= r.started < until}
    return {r.id for r in sim.plivo if since <= r.extra["added"] < until}


def plivo_pages_needed(sim: Simulator, since: datetime, until: datetime) -> int:
    """How many pages of 20 the simulator's listing of ``[since, until)`` has (it repeats one
    object across the first page boundary when there is more than one page)."""
    n = len(expected_ids(sim, "plivo", since, until))
    return max(1, -(-(n + (n > 20)) // 20))


@pytest.mark.parametrize(("name", "paging"), CLIENTS)
def test_lists_every_recording_once_across_pages(client: httpx.Client, name: str, paging: str) -> None:
    with Simulator(
        recordings=90, seed=11, plivo_paging=paging
    ) as sim:  # > 20 per Plivo window: several pages each
        provider = provider_for(sim, name, client)
        ids = [r.recording_id for r in provider.list_recordings(SINCE, UNTIL)]
        assert len(ids) == len(set(ids))  # the simulator lists one item twice; we yield it once
        assert set(ids) == expected_ids(sim, name)
        assert sim.stats[f"{name}.list"] >= (20 if name == "catapult" else 6)
        if name == "plivo":
            # Every page asked for once, and no more pages than the windows hold.
            assert len(sim.plivo_pages) == len(set(sim.plivo_pages))
            windows = [(SINCE, datetime(2024, 1, 31, tzinfo=UTC)), (datetime(2024, 1, 31, tzinfo=UTC), UNTIL)]
            assert sim.stats["plivo.list"] == sum(plivo_pages_needed(sim, *w) for w in windows)


@pytest.mark.parametrize(("name", "paging"), CLIENTS)
def test_sub_range_is_filtered_exactly(sim: Simulator, client: httpx.Client, name: str) -> None:
    since, until = datetime(2024, 1, 20, tzinfo=UTC), datetime(2024, 2, 10, 12, tzinfo=UTC)
    got = {r.recording_id for r in provider_for(sim, name, client).list_recordings(since, until)}
    assert got == expected_ids(sim, name, since, until)
    assert got  # the range is not empty, so the test means something


def test_catapult_states_normalised(sim: Simulator, client: httpx.Client) -> None:
    recs = {r.recording_id: r for r in provider_for(sim, "catapult", client).list_recordings(SINCE, UNTIL)}
    for s in sim.catapult:
        want = {"complete": "complete", "error": "error"}.get(s.state, "pending")
        assert recs[s.id].state == want
        assert recs[s.id].raw == s.doc
        if s.state == "complete":
            assert recs[s.id].duration_seconds == pytest.approx(s.duration, abs=0.001)


@pytest.mark.parametrize(("name", "paging"), CLIENTS)
@pytest.mark.parametrize("fault", ["503:list*2", "429:list*2", "429-bare:list*1", "500:list*1"])
def test_listing_survives_transient_faults(name: str, paging: str, fault: str, client: httpx.Client) -> None:
    with Simulator(recordings=12, seed=3, faults=fault, plivo_paging=paging) as sim:
        provider = provider_for(sim, name, client)
        got = {r.recording_id for r in provider.list_recordings(SINCE, UNTIL)}
        assert got == expected_ids(sim, name)
        assert sum(v for k, v in sim.stats.items() if ".fault." in k) >= 1


@pytest.mark.parametrize(("name", "paging"), CLIENTS)
def test_listing_gives_up_when_provider_stays_down(name: str, paging: str, client: httpx.Client) -> None:
    with Simulator(recordings=3, faults="503:list", plivo_paging=paging) as sim:
        provider = provider_for(sim, name, client, **{})
        provider.api.policy = RetryPolicy(max_attempts=3, base_delay=0.01)  # type: ignore[attr-defined]
        with pytest.raises(ProviderUnavailable, match="gave up after 3 attempts"):
            list(provider.list_recordings(SINCE, UNTIL))
        assert sim.stats[f"{name}.list.requests"] == 3


@pytest.mark.parametrize(("name", "paging"), CLIENTS)
def test_wrong_credentials_end_quickly(sim: Simulator, client: httpx.Client, name: str) -> None:
    wrong = {"CATAPULT_API_SECRET": "nope-nope", "PLIVO_AUTH_TOKEN": "nope-nope"}
    provider = provider_for(sim, name, client, **wrong)
    start = time.monotonic()
    with pytest.raises(AuthError) as info:
        list(provider.list_recordings(SINCE, UNTIL))
    assert time.monotonic() - start < 2
    assert "nope-nope" not in str(info.value)
    assert sim.stats[f"{name}.unauthorized"] == 1  # no retries on 401


@pytest.mark.parametrize(("name", "paging"), CLIENTS)
def test_get_one(sim: Simulator, client: httpx.Client, name: str) -> None:
    provider = provider_for(sim, name, client)
    want = (sim.catapult if name == "catapult" else sim.plivo)[5]
    got = provider.get_recording(want.id)
    assert got.recording_id == want.id and got.raw == want.doc
    with pytest.raises(NotFoundError):
        provider.get_recording("rec-does-not-exist")


@pytest.mark.parametrize(("name", "paging"), CLIENTS)
def test_media_downloads_are_true_and_credentials_stay_home(
    sim: Simulator, client: httpx.Client, name: str, tmp_path: Path
) -> None:
    provider = provider_for(sim, name, client)
    fetched = 0
    for rec in provider.list_recordings(SINCE, UNTIL):
        if rec.state != "complete":
            continue
        got = fetch_media(client, provider, rec, str(tmp_path), RetryPolicy())
        source = next(s for s in (sim.catapult + sim.plivo) if s.id == rec.recording_id)
        assert Path(got.path).read_bytes() == sim.media_bytes(source)
        assert got.format == (source.fmt or "wav")
        fetched += 1
    assert fetched >= 10
    assert sim.media_auth_seen == []  # Plivo's media host never saw a credential
    if name == "plivo":
        assert sim.stats["plivo.redirect"] > 0  # and that held across redirects from the API host


def test_a_redirect_through_the_api_host_keeps_its_connection(
    sim: Simulator, client: httpx.Client, tmp_path: Path
) -> None:
    """Plivo serves some recordings through the API host, which redirects to the media host.
    A redirect left unread closed its connection: every such recording cost a new one (a TLS
    handshake at a real provider). Downloaded one after another, all of them reuse one
    connection per host."""
    provider = provider_for(sim, "plivo", client)
    recs = [r for r in provider.list_recordings(SINCE, UNTIL) if r.state == "complete"]
    before = sim.connections()
    for rec in recs:
        os.unlink(fetch_media(client, provider, rec, str(tmp_path), RetryPolicy()).path)
    assert sim.stats["plivo.redirect"] >= 5
    after = sim.connections()
    assert after["api"] - before["api"] == 0  # the listing's connection, kept alive
    assert after["media"] - before["media"] == 1


def test_the_client_makes_its_connection_pool_at_its_first_request(sim: Simulator, monkeypatch) -> None:
    """Making httpx's transport loads the CA bundle (40-70 ms): a run that asks the provider
    nothing (every window finished, ``forget``) never pays it; one that does gets one pool,
    with the limits asked for."""
    made: list[dict] = []

    class Counting(httpx.HTTPTransport):
        def __init__(self, *args, **kwargs) -> None:
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, "HTTPTransport", Counting)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)  # with a proxy set, the pool is made at once
    with make_client(timeout=2.0, max_connections=3) as client:
        provider = provider_for(sim, "plivo", client)
        assert made == []
        assert len(list(provider.list_recordings(SINCE, UNTIL))) == len(expected_ids(sim, "plivo"))
        list(provider.list_recordings(SINCE, UNTIL))
    assert len(made) == 1
    assert made[0]["limits"].max_connections == 3 and made[0]["limits"].max_keepalive_connections == 3


def test_a_proxy_from_the_environment_is_still_used(monkeypatch) -> None:
    """httpx reads HTTP(S)_PROXY only for its own transport: with one set, the client must go
    through it as httpx's default client does (the lazy pool would have bypassed it)."""
    import socket
    import threading

    seen: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def proxy() -> None:
        conn, _ = server.accept()
        with conn:
            seen.append(conn.recv(65536).split(b"\r\n")[0])
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")

    thread = threading.Thread(target=proxy, daemon=True)
    thread.start()
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    with server, make_client(timeout=5.0) as client:
        assert client.get("http://provider.invalid/v1/recordings").text == "ok"
    thread.join(5)
    assert seen == [b"GET http://provider.invalid/v1/recordings HTTP/1.1"]


def test_catapult_media_requires_auth(sim: Simulator) -> None:
    rec = next(r for r in sim.catapult if r.state == "complete")
    assert httpx.get(rec.doc["media"]).status_code == 401


@pytest.mark.parametrize("paging", PLIVO_PAGING)
def test_plivo_delete_then_404_means_gone(sim: Simulator, client: httpx.Client) -> None:
    provider = provider_for(sim, "plivo", client)
    rid = sim.plivo[0].id
    assert provider.delete_recording(rid) is True  # type: ignore[attr-defined]
    assert provider.delete_recording(rid) is False  # type: ignore[attr-defined]
    assert rid in sim.deleted
    with pytest.raises(NotFoundError):
        provider.get_recording(rid)


@pytest.mark.parametrize("paging", PLIVO_PAGING)
def test_simulator_keeps_plivo_search_rules(sim: Simulator) -> None:
    """The simulator itself must be faithful: 7-day default search, 400 past 30 days or 20."""
    env = sim.env()
    url = f"{env['PLIVO_BASE_URL']}/v1/Account/{env['PLIVO_AUTH_ID']}/Recording/"
    auth = (env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"])
    assert httpx.get(url, auth=auth).json()["objects"] == []  # the data is from 2024: not in the last 7 days
    too_long = {"add_time__gte": "2024-01-01 00:00", "add_time__lt": "2024-02-01 00:00"}
    r = httpx.get(url, params=too_long, auth=auth)
    assert r.status_code == 400 and "30 days" in r.json()["error"]
    assert (
        httpx.get(
            url,
            params={"limit": 21, "add_time__gte": "2024-01-01 00:00", "add_time__lt": "2024-01-20 00:00"},
            auth=auth,
        ).status_code
        == 400
    )
    page = httpx.get(
        url,
        params={"add_time__gte": "2024-01-01 00:00", "add_time__lt": "2024-01-31 00:00", "limit": 2},
        auth=auth,
    ).json()
    assert page["meta"]["next"] is not None and "add_time" not in page["meta"]["next"]  # filters dropped
    assert httpx.get(url, auth=("MA" + "0" * 18, "x")).status_code == 401


def test_default_pacing_stays_under_catapults_enforced_limit(client: httpx.Client, tmp_path: Path) -> None:
    """With the simulator enforcing 1 request/s per endpoint, the default pacing never hits a
    429; a client paced too fast is told to wait (X-RateLimit-Reset) and still finishes."""
    with Simulator(recordings=3, seed=9, faults="ratelimit") as sim:
        settings = load_settings(None, sim.env())  # documented default: 1 request/s
        provider = build_provider(settings, "catapult", client)
        done = [
            fetch_media(client, provider, r, str(tmp_path), RetryPolicy())
            for r in provider.list_recordings(SINCE, UNTIL)
            if r.state == "complete"
        ]
        assert done and sim.stats["catapult.ratelimited"] == 0
    with Simulator(recordings=3, seed=9, faults="ratelimit") as sim:
        fast = provider_for(sim, "catapult", client)
        started = time.monotonic()
        done = [
            fetch_media(client, fast, r, str(tmp_path), RetryPolicy())
            for r in fast.list_recordings(SINCE, UNTIL)
            if r.state == "complete"
        ]
        assert len(done) == sum(1 for r in sim.catapult if r.state == "complete")
        assert sim.stats["catapult.ratelimited"] > 0 and time.monotonic() - started >= 1.0


def test_simulator_429s_are_in_each_providers_shape() -> None:
    with Simulator(recordings=2, faults="429:list*2") as sim:
        env = sim.env()
        plivo = httpx.get(
            f"{env['PLIVO_BASE_URL']}/v1/Account/{env['PLIVO_AUTH_ID']}/Recording/",
            auth=(env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"]),
        )
        assert plivo.status_code == 429 and "retry-after" in plivo.headers and "error" in plivo.json()
        catapult = httpx.get(
            f"{env['CATAPULT_BASE_URL']}/v1/users/{env['CATAPULT_USER_ID']}/recordings",
            auth=(env["CATAPULT_API_TOKEN"], env["CATAPULT_API_SECRET"]),
        )
        assert catapult.status_code == 429 and "retry-after" not in catapult.headers
        assert int(catapult.headers["x-ratelimit-reset"]) > 1e12  # epoch milliseconds
        assert catapult.json()["code"] == "rate-limit-reached" and "message" not in catapult.json()


# --- Plivo's paging modes (issue 9, item 1) ---------------------------------------------------

WINDOW = {"add_time__gte": "2024-01-01 00:00:00", "add_time__lt": "2024-01-31 00:00:00"}


def plivo_list(sim: Simulator, **params: str | int) -> httpx.Response:
    """One raw list request to the simulator, outside our client."""
    env = sim.env()
    return httpx.get(
        f"{env['PLIVO_BASE_URL']}/v1/Account/{env['PLIVO_AUTH_ID']}/Recording/",
        params=params,
        auth=(env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"]),
    )


def ids_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [o["recording_id"] for o in response.json()["objects"]]


def next_query(response: httpx.Response) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(response.json()["meta"]["next"]).query))


@pytest.mark.parametrize("paging", PLIVO_PAGING)
def test_simulator_serves_each_plivo_paging_mode(sim: Simulator, paging: str) -> None:
    """The simulator is faithful to each mode, so the client tests under it mean something."""
    first = plivo_list(sim, limit=5, offset=0, **WINDOW)
    page1 = ids_of(first)
    assert len(page1) == 5
    nxt = next_query(first)
    assert "add_time__gte" not in nxt  # the filters are not in meta.next, in any mode
    by_offset = ids_of(plivo_list(sim, limit=5, offset=5, **WINDOW))
    if paging == "offset":
        assert nxt == {"limit": "5", "offset": "5"} and not set(by_offset) & set(page1)
        return
    assert set(nxt) == {"limit", "cursor"} and nxt["limit"] == "5"
    assert by_offset == page1  # an offset alone is ignored: an offset-only walk sees page 1 again
    page2 = ids_of(plivo_list(sim, limit=5, cursor=nxt["cursor"], **WINDOW))
    assert len(page2) == 5 and not set(page2) & set(page1)
    beside = ids_of(plivo_list(sim, limit=5, offset=0, cursor=nxt["cursor"], **WINDOW))
    assert beside == (page1 if paging == "hybrid" else page2)  # hybrid applies an offset beside a cursor
    narrower = WINDOW | {"add_time__lt": "2024-01-30 00:00:00"}
    other = plivo_list(sim, limit=5, cursor=nxt["cursor"], **narrower)
    assert other.status_code == 400 and "filters" in other.json()["error"]
    assert plivo_list(sim, limit=5, cursor="not-a-cursor", **WINDOW).status_code == 400


@pytest.mark.parametrize("paging", ["cursor", "hybrid"])
def test_a_walk_pinned_to_page_one_ends_after_two_requests(paging: str) -> None:
    """Our old client's request sequence (cursor: ``offset += limit`` and no cursor; hybrid:
    the cursor followed but ``offset`` still sent) is pinned to page 1; the loop guard every
    client walks with ends it at the first page that brings nothing new, naming the window."""
    with Simulator(recordings=90, seed=11, plivo_paging=paging) as sim:
        walk, dedupe = PageWalk("Plivo listing add_time [2024-01-01, 2024-01-31)"), Dedupe()
        params: dict[str, str | int] = {"limit": 20, "offset": 0}
        with pytest.raises(ListingIncomplete, match=r"add_time \[2024-01-01, 2024-01-31\).*no recording"):
            for _ in range(50):  # the old client's only bound was a page cap
                walk.visit("&".join(f"{k}={v}" for k, v in sorted(params.items())))
                response = plivo_list(sim, **params, **WINDOW)
                got = ids_of(response)
                walk.page(len(got), sum(dedupe.first(i) for i in got))
                cursor = next_query(response)["cursor"]
                params = (
                    {"limit": 20, "offset": int(params["offset"]) + 20}
                    if paging == "cursor"
                    else {"limit": 20, "offset": 0, "cursor": cursor}
                )
        assert sim.stats["plivo.list"] == 2
        assert [position for _, position in sim.plivo_pages] == [0, 0]  # page 1, twice


def window_filters(since: datetime, until: datetime) -> str:
    """The filters of a window as the simulator records them (see ``sim.plivo_pages``)."""
    return f"add_time__gte={since:%Y-%m-%d %H:%M:%S}&add_time__lt={until:%Y-%m-%d %H:%M:%S}"


@pytest.mark.parametrize("paging", PLIVO_PAGING)
def test_backfill_over_windows_of_several_pages_archives_each_once(
    paging: str, cli, use_sim, tmp_path: Path
) -> None:
    """Through the CLI: three windows of two or more pages each, every recording archived
    exactly once, every page asked for once, the windows finished (the rerun lists nothing)."""
    with Simulator(recordings=100, seed=5, plivo_paging=paging, seconds=(3, 4)) as sim:
        use_sim(sim)
        dest, report = tmp_path / "arch", tmp_path / "report.json"
        args = ("backfill", "--provider", "plivo", "--since", "2024-01-01", "--until", "2024-03-01")
        result = cli(*args, "--window", "20d", "--dest", str(dest), "--report", str(report))
        assert result.exit_code == 0, result.output
        assert "ended early" not in result.output
        windows = [
            (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 21, tzinfo=UTC)),
            (datetime(2024, 1, 21, tzinfo=UTC), datetime(2024, 2, 10, tzinfo=UTC)),
            (datetime(2024, 2, 10, tzinfo=UTC), UNTIL),
        ]
        pages = [plivo_pages_needed(sim, *w) for w in windows]
        assert min(pages) >= 2  # several pages in every window, so paging is exercised
        everything = {r.id for r in sim.plivo}
        counts = json.loads(report.read_text())["counts"]
        assert counts == {
            "listed": 100,
            "archived": 100,
            "skipped": 0,
            "pending": 0,
            "failed": 0,
            "unavailable": 0,
        }
        assert {p.stem for p in dest.rglob("*.json")} == everything  # one sidecar each
        assert sim.stats["plivo.media"] == 100  # each downloaded once
        assert len(sim.plivo_pages) == len(set(sim.plivo_pages))  # no page asked for twice
        served = Counter(filters for filters, _ in sim.plivo_pages)
        for (since, until), need in zip(windows, pages, strict=True):
            assert served.pop(window_filters(since, until)) == need  # each window's pages, no more
        assert sum(served.values()) <= 1  # besides them at most the credentials check
        before = sim.stats["plivo.list"]
        again = cli(*args, "--window", "20d", "--dest", str(dest))
        assert again.exit_code == 0 and "listed=0" in again.output, again.output
        assert sim.stats["plivo.list"] == before  # every window was finished
