"""What a gateway process holds, built once in the app's lifespan and passed to every handler."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from messaging.bus.base import Bus, user_channel
from messaging.bus.hub import Hub, close_envelope, envelope
from messaging.config import Settings
from messaging.domain.models import ConvKind
from messaging.errors import CloseCode
from messaging.gateway.auth import TokenVerifier
from messaging.gateway.events import for_viewer, from_appended
from messaging.gateway.metrics import Metrics
from messaging.store.batcher import AppendBatcher
from messaging.store.log import Appended


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    hub: Hub
    bus: Bus
    batcher: AppendBatcher
    verifier: TokenVerifier
    metrics: Metrics
    gateway_id: str = field(default_factory=lambda: f"{os.getpid()}-{secrets.token_hex(3)}")
    draining: bool = False

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
    """After commit: one envelope per event (per viewer kind for broadcasts), one message per
    recipient's channel, for the bus's next pipeline."""
    messages: list[tuple[str, bytes]] = []
    for ev in events:
        frame = from_appended(ev)
        if ev.conv_kind == ConvKind.BROADCAST and ev.kind == "created":
            own = envelope(ev.origin, frame)
            other = envelope(ev.origin, for_viewer(frame, "", ev.conv_kind))
            messages += [(user_channel(r), own if r == ev.actor else other) for r in ev.recipients]
            continue
        env = envelope(ev.origin, frame)
        messages += [(user_channel(r), env) for r in ev.recipients]
    return messages
