"""Servers the notification tests talk to: an SMTP server (aiosmtpd) whose behaviour a test
sets, a Web Push endpoint that records what it gets, and `messaging worker` processes."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from messaging.devservices import free_port

# --- SMTP ----------------------------------------------------------------------------------------


@dataclass
class Mail:
    rcpt: list[str]
    message: EmailMessage
    at: float

    @property
    def conv(self) -> str | None:
        value = self.message["X-Messaging-Conversation"]
        return str(value) if value is not None else None

    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]


class Sink:
    """An SMTP server's handler. By default it accepts every message; a test may make it refuse
    recipients, drop the connection at DATA, or hold its answer to DATA."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mails: list[Mail] = []
        self.data_commands = 0
        self.refuse_rcpt = False
        # DATA commands still to answer by closing the connection (nothing is kept)
        self.disconnects = 0
        # keep, then hold the answer to every DATA after this many mails, until `release`
        self.stall_after: int | None = None
        # hold every answer to DATA without keeping anything (a server that stopped answering)
        self.hang = False
        self.stalled = threading.Event()
        self.release = threading.Event()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.refuse_rcpt:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.data_commands += 1
        if self.disconnects > 0:
            self.disconnects -= 1
            server.transport.close()
            return "421 4.3.0 closing"
        if self.hang:
            await self._wait_release()
            return "451 4.3.0 too late"
        raw = envelope.original_content or envelope.content
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.mails.append(Mail(list(envelope.rcpt_tos), message, time.time()))
            count = len(self.mails)
        if self.stall_after is not None and count > self.stall_after:
            self.stalled.set()
            await self._wait_release()
        return "250 OK"

    async def _wait_release(self) -> None:
        await asyncio.to_thread(self.release.wait)

    def to(self, address: str, conv: str | None = None) -> list[Mail]:
        with self.lock:
            return [m for m in self.mails if address in m.rcpt and (conv is None or m.conv == conv)]

    def for_conv(self, conv: str) -> list[Mail]:
        with self.lock:
            return [m for m in self.mails if m.conv == conv]


@dataclass
class SmtpServer:
    sink: Sink
    controller: Controller
    port: int

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


def start_smtp() -> SmtpServer:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    return SmtpServer(sink, controller, port)


# --- Web Push ------------------------------------------------------------------------------------


@dataclass
class Pushed:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PushEndpoint:
    """Answers 201 under /ok/ and 410 (the subscription is gone) under /gone/."""

    server: ThreadingHTTPServer
    received: list[Pushed] = field(default_factory=list)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_push_endpoint() -> PushEndpoint:
    received: list[Pushed] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            received.append(Pushed(self.path, dict(self.headers.items()), body))
            self.send_response(410 if self.path.startswith("/gone/") else 201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return PushEndpoint(server, received)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class BrowserKeys:
    """What a browser keeps for one push subscription: its ECDH key and its auth secret."""

    private: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def new(cls) -> BrowserKeys:
        return cls(ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(16))

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )


def vapid_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# --- the worker process --------------------------------------------------------------------------


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start_worker(env: Mapping[str, str], log_dir: Path, **extra: str) -> Worker:
    log_path = log_dir / f"worker-{secrets.token_hex(4)}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "messaging", "worker"],
            env={**os.environ, **env, **extra},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    worker = Worker(proc, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{worker.log()}")
        if "worker_started" in worker.log():
            return worker
        time.sleep(0.05)
    worker.terminate()
    raise RuntimeError(f"worker not started in time:\n{worker.log()}")
