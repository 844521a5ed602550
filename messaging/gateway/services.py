"""What a gateway process holds, built once in the app's lifespan and passed to every handler."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from messaging.bus.base import Bus, user_channel
from messaging.bus.hub import (
    FANOUT_CHANNEL,
    FANOUT_MIN_RECIPIENTS,
    Hub,
    close_envelope,
    envelope,
    fanout_envelope,
    tracked_envelope,
)
from messaging.config import Settings
from messaging.domain.models import ConvKind
from messaging.errors import CloseCode
from messaging.gateway.auth import TokenVerifier
from messaging.gateway.delivery import DeliveryTracker
from messaging.gateway.events import for_viewer, from_appended
from messaging.gateway.metrics import Metrics
from messaging.store.batcher import AppendBatcher
from messaging.store.broadcasts import Sent
from messaging.store.log import Appended
from messaging.store.pool import translated_errors

KIND_CACHE_MAX = 200_000


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    hub: Hub
    bus: Bus
    batcher: AppendBatcher
    verifier: TokenVerifier
    metrics: Metrics
    deliveries: DeliveryTracker
    gateway_id: str = field(default_factory=lambda: f"{os.getpid()}-{secrets.token_hex(3)}")
    draining: bool = False
    # conversation -> (kind, owner): neither ever changes, so the cache is never stale
    _kinds: dict[str, tuple[ConvKind | None, str | None]] = field(default_factory=dict)

    async def conv_kind(self, conv_id: str) -> tuple[ConvKind | None, str | None]:
        """A conversation's kind and owner ((None, None) when it does not exist)."""
        known = self._kinds.get(conv_id)
        if known is not None:
            return known
        async with translated_errors(), self.pool.acquire() as db:
            row = await db.fetchrow("SELECT kind, owner FROM conversations WHERE id = $1", conv_id)
        if row is None:
            return None, None
        if len(self._kinds) >= KIND_CACHE_MAX:
            self._kinds.clear()
        found = (ConvKind(row["kind"]), row["owner"])
        self._kinds[conv_id] = found
        return found

    def publish_broadcast(self, sent: Sent) -> None:
        self.bus.publish(broadcast_messages(sent))

    def publish_events(self, events: Iterable[Appended]) -> None:
        messages = event_messages(events)
        if messages:
            self.bus.publish(messages)

    def publish_ephemeral(
        self, frame: dict[str, Any], recipients: Iterable[str], origin: str | None
    ) -> None:
        env = envelope(origin, frame)
        self.bus.publish([(user_channel(r), env) for r in recipients])

    def disconnect_users(self, user_ids: Iterable[str], code: CloseCode) -> None:
        """Close every socket of these users, on whichever gateway it is."""
        env = close_envelope(code)
        self.bus.publish([(user_channel(u), env) for u in user_ids])


def event_messages(events: Iterable[Appended]) -> list[tuple[str, bytes]]:
    """After commit: one envelope per event, to each recipient's channel, or once through the
    fan-out channel when the recipients are many."""
    messages: list[tuple[str, bytes]] = []
    for ev in events:
        frame = from_appended(ev)
        if ev.conv_kind == ConvKind.BROADCAST:
            own = [u for u in ev.recipients if u == ev.actor]
            others = [u for u in ev.recipients if u != ev.actor]
            messages += _to_many(ev.origin, frame, own, tracked=False)
            shown = for_viewer(frame, "", ConvKind.BROADCAST)
            messages += _to_many(ev.origin, shown, others, tracked=False)
            continue
        messages += _to_many(ev.origin, frame, list(ev.recipients), tracked=False)
    return messages


def _to_many(
    origin: str | None, frame: dict[str, Any], users: list[str], *, tracked: bool
) -> list[tuple[str, bytes]]:
    if not users:
        return []
    if len(users) >= FANOUT_MIN_RECIPIENTS:
        return [(FANOUT_CHANNEL, fanout_envelope(origin, frame, users, tracked=tracked))]
    env = tracked_envelope(origin, frame) if tracked else envelope(origin, frame)
    return [(user_channel(u), env) for u in users]


def broadcast_messages(sent: Sent) -> list[tuple[str, bytes]]:
    """A sent broadcast: its events as the sender sees them to the sender, and as recipients
    see them to the recipients, one version per language, the message tracked for
    "delivered"."""
    messages: list[tuple[str, bytes]] = []
    english = [r.id for r in sent.recipients if r.locale == "en"]
    french = [r.id for r in sent.recipients if r.locale != "en"]
    for ev in sent.events:
        frame = from_appended(ev)
        messages += _to_many(None, frame, [ev.actor], tracked=False)
        tracked = ev.kind == "message"
        if ev.kind == "message" and "body_en" in frame:
            messages += _to_many(
                None, for_viewer(frame, "", ConvKind.BROADCAST, "fr"), french, tracked=True
            )
            messages += _to_many(
                None, for_viewer(frame, "", ConvKind.BROADCAST, "en"), english, tracked=True
            )
        else:
            messages += _to_many(
                None,
                for_viewer(frame, "", ConvKind.BROADCAST, "fr"),
                french + english,
                tracked=tracked,
            )
    return messages
