"""The simulator speaks HTTP/1.1 as a real server does: request bodies are read off a
keep-alive connection, so the next request on it is parsed from its own first byte."""

from __future__ import annotations

import socket

import httpx
import pytest

from archiver.sim import Simulator


def local_port(response: httpx.Response) -> int:
    """The client-side port of the connection a response came over."""
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


def test_a_delete_with_a_body_leaves_the_keep_alive_connection_usable(sim: Simulator) -> None:
    env = sim.env()
    root = f"{env['PLIVO_BASE_URL']}/v1/Account/{env['PLIVO_AUTH_ID']}/Recording/"
    rid = sim.plivo[0].id
    # One connection only, kept alive: plivo-python's delete sends a JSON body like this one.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(auth=(env["PLIVO_AUTH_ID"], env["PLIVO_AUTH_TOKEN"]), limits=limits) as client:
        body = {"callback_method": "POST", "pad": "x" * 300}
        deleted = client.request("DELETE", f"{root}{rid}/", json=body)
        assert deleted.status_code == 204
        after = client.get(f"{root}{sim.plivo[1].id}/")
        assert after.status_code == 200, after.text
        assert after.json()["recording_id"] == sim.plivo[1].id
        assert local_port(after) == local_port(deleted)  # the same connection carried both
    assert rid in sim.deleted


def test_a_get_with_a_body_and_a_bad_length_on_one_raw_connection(sim: Simulator) -> None:
    """Over a raw socket, so nothing in a client library frames the body for us: a GET with a
    body is answered and the next request on the connection too; a Content-Length that is
    not a number is a 400 that closes the connection (its body cannot be found)."""
    host, port = sim.api_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        body = b'{"ignored": true}'
        first = (
            f"GET /_sim/stats HTTP/1.1\r\nHost: sim\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )
        plain = b"GET /_sim/stats HTTP/1.1\r\nHost: sim\r\n\r\n"
        bad = b"GET /_sim/stats HTTP/1.1\r\nHost: sim\r\nContent-Length: x\r\n\r\n"
        conn.sendall(first + plain + bad + plain)
        got = b""
        while chunk := conn.recv(65536):  # the server closes after the 400
            got += chunk
    replies = got.split(b"HTTP/1.1 ")[1:]
    # The request after the bad length is never answered: the connection closed with the 400.
    assert [r[:3] for r in replies] == [b"200", b"200", b"400"], got[:400]


def test_the_simulators_plivo_paging_mode_is_checked(cli) -> None:
    with pytest.raises(ValueError, match="offset, cursor, hybrid"):
        Simulator(plivo_paging="pages")
    bad = cli("sim", "--plivo-paging", "pages")
    assert bad.exit_code == 2 and "offset" in bad.output
    assert "--plivo-paging" in cli("sim", "--help").output
