"""The custody chain's check, on events built in memory (no storage)."""

from __future__ import annotations

from archiver.compliance.custody import check_chain, event_key, render_event, sha256


def chain(n: int) -> list[tuple[int | None, str, bytes]]:
    items: list[tuple[int | None, str, bytes]] = []
    prev = None
    for seq in range(1, n + 1):
        body = render_event({"schema": "archiver.custody/1", "seq": seq, "prev": prev, "action": "t"})
        items.append((seq, event_key(seq), body))
        prev = sha256(body)
    return items


def test_an_intact_chain_and_its_anchor() -> None:
    items = chain(5)
    check = check_chain(items, anchor=(3, sha256(items[2][2]), None))
    assert check.ok and [e.seq for e in check.events] == [1, 2, 3, 4, 5]


def test_each_kind_of_tampering_is_named_at_the_event_it_concerns() -> None:
    items = chain(5)
    edited = [*items[:2], (3, items[2][1], items[2][2].replace(b'"t"', b'"u"')), *items[3:]]
    assert str(check_chain(edited).problems[0]).startswith("event 3 (_custody/000000000003.jsonl): altered")
    gap = items[:2] + items[3:]
    assert "missing: event 3 deleted" in str(check_chain(gap).problems[0])
    pretty = [*items[:4], (5, items[4][1], items[4][2].replace(b",", b", "))]
    assert "rewritten" in str(check_chain(pretty).problems[0])
    cut = check_chain(items[:3], anchor=(5, sha256(items[4][2]), None))
    assert "the chain ends at event 3" in str(cut.problems[0])
    headless = check_chain(items[1:])
    assert {p.seq for p in headless.problems} == {1}  # the start cut off
    stray = check_chain([*items, (None, "_custody/notes.txt", b"x")])
    assert [p.where for p in stray.problems] == ["_custody/notes.txt"]
