"""Web Push subscriptions as browsers give them, and the VAPID public key they subscribe with.

Kept apart from the sender so that the gateway checks subscriptions without loading the HTTP
client and pywebpush.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

MAX_ENDPOINT_CHARS = 2048


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def public_key(private_pem: str) -> str:
    """The applicationServerKey a browser subscribes with: base64url of the public point."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    raw = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def subscription_problem(
    endpoint: object, p256dh: object, auth: object, *, allow_http: bool
) -> str | None:
    """Why a browser's PushSubscription cannot be used, or None."""
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT_CHARS:
        return f"endpoint must be a URL of at most {MAX_ENDPOINT_CHARS} characters"
    parts = urlsplit(endpoint)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        return "endpoint must be an https:// URL"
    if not allow_http and _private_host(parts.hostname):
        return "endpoint must be a public push service"
    if not isinstance(p256dh, str) or not isinstance(auth, str):
        return "keys.p256dh and keys.auth are required"
    try:
        point = _b64url_decode(p256dh)
        secret = _b64url_decode(auth)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, binascii.Error):
        return "keys.p256dh must be a P-256 public key (base64url)"
    if len(secret) != 16:
        return "keys.auth must be 16 bytes (base64url)"
    return None


def _private_host(host: str) -> bool:
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global
