"""The interface every broker backend implements, and the guarantee it gives.

Delivery is at most once: a message published while a subscriber's connection is down is lost
to that subscriber. What makes this safe is the other half of the contract: after any
interruption the backend re-establishes every subscription and only then calls
`on_interrupted`, so the gateway tells its clients to `resync` from Postgres by seq. Within one
connection, messages on one channel arrive in the order they were published.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

OnMessage = Callable[[str, bytes], None]
OnInterrupted = Callable[[], None]


class Bus(Protocol):
    healthy: bool
    reconnects: int

    async def run(self) -> None:
        """Keep the subscriptions alive until cancelled; reconnect on every failure."""

    async def subscribe(self, channel: str) -> None:
        """Subscribe; returns once the broker confirmed it, or at once while disconnected
        (the subscription is then made, and clients resynced, when the connection is back)."""

    async def unsubscribe(self, channel: str) -> None: ...

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Queue messages for publishing without waiting: a slow or absent broker never holds
        up a commit or its acknowledgement."""

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


def user_channel(user_id: str) -> str:
    """Each user has one channel; every gateway holding one of their sockets subscribes to it."""
    return "u:" + user_id
