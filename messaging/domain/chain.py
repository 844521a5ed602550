"""The tamper-evidence chain of a conversation's events.

Each event stores `hash = sha256(previous event's hash || canonical bytes of this event)`, the
first event of a conversation chaining from 32 zero bytes. Changing, removing or reordering any
stored event, even by someone with every right on the database, breaks the chain from that
event on; `messaging verify-log` recomputes every chain and names the first event that differs.
The canonical bytes are JSON with sorted keys of exactly the stored columns, the timestamp in
UTC with microseconds, so that anyone can recompute them from a database dump.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = bytes(32)


def canonical_ts(ts: datetime) -> str:
    """The timestamp as hashed: UTC, microseconds, `Z`."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    prev: bytes,
    *,
    conv: str,
    seq: int,
    kind: str,
    actor: str,
    body: str | None,
    data: dict[str, Any],
    target: int | None,
    cid: str | None,
    lang: str | None,
    ts: datetime,
) -> bytes:
    """The chained hash of one event."""
    canonical = orjson.dumps(
        [conv, seq, kind, actor, body, data, target, cid, lang, canonical_ts(ts)],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(prev + canonical).digest()
