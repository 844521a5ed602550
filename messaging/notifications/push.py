"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291), by pywebpush.

A push service answering 404 or 410 no longer knows the subscription: it is removed. The `Topic`
header is derived from the conversation, so a push service that still holds an undelivered
notification of the same conversation replaces it instead of queueing another.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import aiohttp
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush_async

from messaging.notifications.vapid import subscription_problem
from messaging.store.notifications import Subscription

TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """`sent`, `gone` (the subscription was removed) or `failed`, with a short error code."""

    outcome: str
    error: str | None = None


def topic(conv: str) -> str:
    """At most 32 characters of the base64url alphabet, as RFC 8030 asks."""
    digest = hashlib.sha256(conv.encode()).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode()


class PushSender:
    def __init__(self, private_pem: str, subject: str, *, timeout_s: float, allow_http: bool):
        self._vapid = Vapid02.from_pem(private_pem.encode())
        self._subject = subject
        self._timeout_s = timeout_s
        self._allow_http = allow_http
        self._session: aiohttp.ClientSession | None = None

    async def send(self, sub: Subscription, payload: bytes, *, conv: str) -> PushOutcome:
        if subscription_problem(sub.endpoint, sub.p256dh, sub.auth, allow_http=self._allow_http):
            return PushOutcome("gone", "push_invalid")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            await webpush_async(
                {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
                data=payload.decode(),
                vapid_private_key=self._vapid,
                vapid_claims={"sub": self._subject},
                ttl=TTL_S,
                timeout=self._timeout_s,
                headers={"Topic": topic(conv), "Urgency": "normal"},
                aiohttp_session=self._session,
            )
        except WebPushException as exc:
            status = exc.status_code
            if status in (404, 410):
                return PushOutcome("gone", f"push_{status}")
            return PushOutcome("failed", f"push_{status}" if status else "push_error")
        except (aiohttp.ClientError, TimeoutError, OSError):
            return PushOutcome("failed", "push_unreachable")
        return PushOutcome("sent")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
