"""``next_page``: the one place that decides a Plivo listing's next request (PROVIDERS.md,
"Paging modes"), as a pure function of the page that came back and what was sent."""

from __future__ import annotations

import pytest

from archiver.errors import ListingIncomplete
from archiver.providers.plivo import next_page

ROOT = "/v1/Account/MA0123456789ABCDEFGH/Recording/"


@pytest.mark.parametrize(
    ("meta", "items", "sent", "want"),
    [
        # offset paging: the offset meta.next names, whatever we would have counted
        ({"next": f"{ROOT}?limit=20&offset=20"}, 20, {"offset": 0}, {"offset": 20}),
        ({"next": f"{ROOT}?limit=20&offset=35"}, 15, {"offset": 20}, {"offset": 35}),
        # cursor: the cursor and no offset, even when meta.next carries one beside it
        ({"next": f"{ROOT}?limit=20&cursor=abc%3D%3D"}, 20, {"offset": 0}, {"cursor": "abc=="}),
        ({"next": f"{ROOT}?limit=20&offset=0&cursor=c2"}, 20, {"cursor": "c1"}, {"cursor": "c2"}),
        ({"next": f"https://api.plivo.com{ROOT}?cursor=c3&limit=20"}, 20, {"cursor": "c2"}, {"cursor": "c3"}),
        # the end
        ({"next": None}, 20, {"offset": 0}, None),
        ({"next": ""}, 20, {"offset": 0}, None),
        ({}, 20, {"offset": 0}, None),
        # no meta at all: only a full page says there may be more
        (None, 20, {"offset": 40}, {"offset": 60}),
        (None, 19, {"offset": 40}, None),
        (None, 0, {"offset": 0}, None),
    ],
)
def test_next_page(meta, items, sent, want) -> None:
    assert next_page(meta, items, sent) == want


@pytest.mark.parametrize(
    ("meta", "sent", "words"),
    [
        ({"next": f"{ROOT}?limit=20"}, {"offset": 0}, "neither a cursor nor an offset"),
        ({"next": f"{ROOT}?limit=20&offset=-20"}, {"offset": 0}, "neither a cursor nor an offset"),
        ({"next": f"{ROOT}?limit=20&cursor="}, {"offset": 0}, "neither a cursor nor an offset"),
        ({"next": 20}, {"offset": 0}, "not a URL"),
        (None, {"cursor": "c1"}, "without meta"),
    ],
)
def test_a_next_page_that_cannot_be_asked_for_ends_the_walk_incomplete(meta, sent, words) -> None:
    """More is promised but there is no safe way to ask for it: never taken as the end."""
    with pytest.raises(ListingIncomplete, match=words):
        next_page(meta, 20, sent)
