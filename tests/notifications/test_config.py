"""The notifier's settings are checked at start, each refusal naming its variable."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from messaging.config import ConfigError, load
from messaging.notifications.vapid import public_key

BASE = {
    "MESSAGING_DATABASE_URL": "postgresql://app@localhost/messaging",
    "MESSAGING_REDIS_URL": "redis://localhost:6379/0",
    "MESSAGING_JWT_SECRET": "s" * 40,
    "MESSAGING_ATTACHMENTS_URL": "file:///tmp/attachments",
}


def test_defaults_send_nothing_anywhere() -> None:
    """Without SMTP or VAPID settings the worker sends no e-mail and no push."""
    settings = load(BASE)
    assert settings.smtp_url is None
    assert settings.notify.vapid_private_pem is None
    assert settings.notify_delay_s == 60.0
    assert settings.notify.public_url == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MESSAGING_SMTP_URL", "http://mail.example.org"),
        ("MESSAGING_SMTP_URL", "smtp://mail.example.org:99999"),
        ("MESSAGING_SMTP_FROM", "not an address"),
        ("MESSAGING_PUBLIC_URL", "messagerie.example.org"),
        ("MESSAGING_VAPID_SUBJECT", "direction@example.org"),
        ("MESSAGING_VAPID_PRIVATE_KEY", "not-a-key"),
        ("MESSAGING_NOTIFY_MAX_ATTEMPTS", "0"),
        ("MESSAGING_NOTIFY_DELAY_S", "-1"),
    ],
)
def test_a_wrong_value_is_refused_with_its_name(name: str, value: str) -> None:
    """Each unusable value stops the command with the variable's name."""
    with pytest.raises(ConfigError, match=name):
        load({**BASE, name: value})


def test_a_vapid_key_is_read_in_every_usual_form(tmp_path: Path) -> None:
    """A PEM file, PEM text, and the base64url of the raw key give the same public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    path = tmp_path / "vapid.pem"
    path.write_bytes(pem)
    forms = [str(path), pem.decode(), base64.urlsafe_b64encode(raw).rstrip(b"=").decode()]
    keys = {
        public_key(load({**BASE, "MESSAGING_VAPID_PRIVATE_KEY": f}).notify.vapid_private_pem or "")
        for f in forms
    }
    assert len(keys) == 1


def test_a_key_on_another_curve_is_refused() -> None:
    """VAPID keys are P-256."""
    other = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match="P-256"):
        load({**BASE, "MESSAGING_VAPID_PRIVATE_KEY": other.decode()})
