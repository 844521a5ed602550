"""E-mail through SMTP (aiosmtplib): the message, and a sender that keeps a few connections open.

`MESSAGING_SMTP_URL` is `smtp://[user:password@]host[:port]` (STARTTLS when the server offers
it) or `smtps://...` (TLS from the start). Every failure becomes a `MailError` with a short code
and whether it is permanent (a 5xx refusal) or worth a retry (4xx, timeout, disconnect,
unreachable); a connection the server closed while idle is replaced once, silently.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

import aiosmtplib

from messaging.notifications.templates import Rendered


class MailError(Exception):
    """A send that failed; `code` is recorded (never content), `permanent` ends the retries."""

    def __init__(self, code: str, *, permanent: bool = False) -> None:
        super().__init__(code)
        self.code = code
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    hostname: str
    port: int
    use_tls: bool
    username: str | None = None
    password: str | None = None


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    tls = parts.scheme == "smtps"
    return SmtpTarget(
        hostname=parts.hostname or "localhost",
        port=parts.port or (465 if tls else 25),
        use_tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def build_email(
    rendered: Rendered,
    *,
    to_name: str,
    to_addr: str,
    from_addr: str,
    lang: str,
    conv: str,
    notification_id: int,
) -> EmailMessage:
    """The multipart/alternative e-mail. Its Message-ID derives from the notification's first
    outbox row, so a copy sent again after a crash carries the same id (clients fold them)."""
    domain = from_addr.rpartition("@")[2] or "localhost"
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = from_addr
    local, _, to_domain = to_addr.rpartition("@")
    msg["To"] = Address(display_name=to_name, username=local, domain=to_domain)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<notification-{notification_id}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Messaging-Conversation"] = conv
    # quoted-printable: 7-bit clean, for servers without 8BITMIME
    msg.set_content(rendered.plain, cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    msg["Content-Language"] = lang  # after: making the alternative moves Content-* headers
    return msg


def _classify(exc: BaseException) -> MailError:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        permanent = all(r.code >= 500 for r in exc.recipients)
        return MailError("smtp_refused" if permanent else "smtp_deferred", permanent=permanent)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return MailError("smtp_auth")  # a configuration to fix: retried meanwhile
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        permanent = exc.code >= 500
        return MailError("smtp_refused" if permanent else "smtp_deferred", permanent=permanent)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return MailError("smtp_timeout")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return MailError("smtp_disconnected")
    if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
        return MailError("smtp_unreachable")
    return MailError("smtp_error")


class SmtpSender:
    """Sends e-mail over at most `connections` SMTP connections, reused between sends."""

    def __init__(self, url: str, *, timeout_s: float, connections: int = 4) -> None:
        self._target = parse_smtp_url(url)
        self._timeout = timeout_s
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[aiosmtplib.SMTP] = []

    async def _connect(self) -> aiosmtplib.SMTP:
        t = self._target
        client = aiosmtplib.SMTP(
            hostname=t.hostname,
            port=t.port,
            use_tls=t.use_tls,
            username=t.username,
            password=t.password,
            timeout=self._timeout,
        )
        await client.connect()
        return client

    async def send(self, message: EmailMessage) -> None:
        """Send `message`, or raise MailError."""
        async with self._slots:
            client = self._idle.pop() if self._idle else None
            try:
                if client is not None:
                    try:
                        await client.send_message(message)
                    except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                        _drop(client)  # closed while idle: one fresh connection, once
                        client = None
                if client is None:
                    client = await self._connect()
                    await client.send_message(message)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                _drop(client)
                raise _classify(exc) from exc
            except BaseException:
                _drop(client)
                raise
            self._idle.append(client)

    async def aclose(self) -> None:
        while self._idle:
            client = self._idle.pop()
            try:
                await asyncio.wait_for(client.quit(), 2)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                _drop(client)


def _drop(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        client.close()
