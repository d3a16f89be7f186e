"""The domain types' constants."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import pytest

from retrainer.core.types import EVENT_KINDS, Event, EventKind

CONCEPTS = Path(__file__).parents[2] / "docs" / "concepts.md"


def test_event_kinds_is_the_event_kind_literal_sorted():
    # one source: the Literal mypy checks every Event(kind=...) against
    assert get_args(EventKind) == EVENT_KINDS
    assert list(EVENT_KINDS) == sorted(set(EVENT_KINDS))
    assert Event.__annotations__["kind"] == "EventKind"


def test_every_event_kind_is_documented_in_concepts_and_only_those():
    text = CONCEPTS.read_text()
    bullet = re.search(r"^- \*\*Event\*\*:(.*?)(?=^- \*\*)", text, re.M | re.S)
    assert bullet is not None, "docs/concepts.md lost its **Event** bullet"
    documented = re.findall(r"`([a-z_]+\.[a-z_]+)`", bullet.group(1))
    assert sorted(documented) == sorted(EVENT_KINDS)


@pytest.mark.parametrize("url", ["memory://", "sqlite://"])
def test_a_store_keeps_an_event_kind_this_version_does_not_write(url: str):
    # the Literal checks what retrainer writes; a kind written by a newer version (or a user's
    # own events) still goes in and reads back, as before EventKind existed
    from retrainer.adapters.metadata import open_metadata_store

    store = open_metadata_store(url)
    try:
        kind: str = "team.note"
        store.append_event(Event(kind=kind, at=datetime(2024, 1, 1, tzinfo=UTC), message="hi"))  # type: ignore[arg-type]
        assert [e.kind for e in store.list_events(kinds=["team.note"])] == ["team.note"]
    finally:
        store.close()
