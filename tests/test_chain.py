"""The chained event hash: deterministic, and sensitive to every stored field."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from messaging.domain.chain import GENESIS, canonical_ts, event_hash


@dataclass(frozen=True)
class Ev:
    conv: str = "c_1"
    seq: int = 2
    kind: str = "message"
    actor: str = "ens-1"
    body: str | None = "Bonjour, Léa a oublié son manteau."
    data: Any = None
    target: int | None = None
    cid: str | None = "m-1"
    lang: str | None = "fr"
    ts: datetime = datetime(2026, 11, 29, 13, 5, 7, 123456, tzinfo=UTC)

    def digest(self, prev: bytes = GENESIS) -> bytes:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["data"] = self.data if self.data is not None else {"attachments": []}
        return event_hash(prev, **values)


CHANGES: list[tuple[str, Any]] = [
    ("conv", "c_2"),
    ("seq", 3),
    ("kind", "deleted"),
    ("actor", "par-1"),
    ("body", "Bonjour"),
    ("body", None),
    ("data", {"attachments": [], "reply_to": 1}),
    ("target", 1),
    ("cid", "m-2"),
    ("lang", "en"),
    ("ts", datetime(2026, 11, 29, 13, 5, 7, 123457, tzinfo=UTC)),
]


def test_hash_is_deterministic() -> None:
    """The same event after the same predecessor always hashes the same."""
    assert Ev().digest() == Ev().digest()
    assert len(Ev().digest()) == 32


@pytest.mark.parametrize(("name", "value"), CHANGES)
def test_every_field_changes_the_hash(name: str, value: Any) -> None:
    """Altering any stored field, by one microsecond even, gives another hash."""
    assert replace(Ev(), **{name: value}).digest() != Ev().digest()


def test_predecessor_changes_the_hash() -> None:
    """Each hash depends on the previous one, so a change propagates down the chain."""
    assert Ev().digest(GENESIS) != Ev().digest(b"\x01" * 32)


def test_timestamp_zone_does_not_matter() -> None:
    """The same instant written in another zone hashes the same (UTC canonical form)."""
    east = Ev().ts.astimezone(timezone(timedelta(hours=-5)))
    assert replace(Ev(), ts=east).digest() == Ev().digest()
    assert canonical_ts(east) == "2026-11-29T13:05:07.123456Z"
