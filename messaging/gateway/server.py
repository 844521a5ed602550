"""Running the app under uvicorn, with a graceful drain on SIGTERM or Ctrl-C.

uvicorn on its own closes every WebSocket with 1012 the moment a signal arrives, dropping what
the connections still had queued. Here the first signal instead marks the process as draining
(`/readyz` answers 503 so a balancer stops sending clients), closes each socket with 1012
once its queued frames are written, and only then lets uvicorn shut down: within the drain
timeout in every case. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from types import FrameType
from typing import Any

import structlog
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from messaging.config import Settings
from messaging.errors import CloseCode
from messaging.gateway.services import Services

log = structlog.get_logger(__name__)

# How long a close frame may wait for a peer that reads nothing before the connection is cut.
CLOSE_FRAME_WAIT_S = 5.0


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, with a bounded close.

    uvicorn's close waits until the peer has read everything buffered. A client that never
    reads again (a slow consumer closed with 4008) would then hold its socket forever, since
    TCP zero-window probes are answered. Here the close frame waits at most
    CLOSE_FRAME_WAIT_S for the peer to make room; then the connection is aborted.
    """

    async def send(self, message: Any) -> None:
        if message.get("type") == "websocket.close" and not self.writable.is_set():
            try:
                await asyncio.wait_for(self.writable.wait(), CLOSE_FRAME_WAIT_S)
            except TimeoutError:
                log.info("ws_aborted", reason="peer_not_reading")
                self._reset()
                return
        await super().send(message)

    def _reset(self) -> None:
        """Abort with a TCP reset: a plain close would leave the kernel retrying the unread
        data to the stalled peer for minutes."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Starlette, drain_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_s = drain_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        services: Services | None = getattr(self._app.state, "services", None)
        if services is None or services.draining or self.should_exit:
            super().handle_exit(sig, frame)
            return
        services.draining = True
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(lambda: loop.create_task(self._drain(services)))

    async def _drain(self, services: Services) -> None:
        started = time.monotonic()
        sockets = list(services.hub.sockets())
        log.info("drain_started", connections=len(sockets))
        for sock in sockets:
            sock.close_soon(CloseCode.RESTART)
        deadline = started + max(self._drain_s - 2.0, 1.0)
        while services.hub.connections and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        log.info("drain_done", seconds=round(time.monotonic() - started, 3))
        self.should_exit = True


def run(app: Starlette, settings: Settings, host: str, port: int) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws=WebSocketProtocol,
        ws_max_size=settings.limits.max_frame_bytes,
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=2,
        proxy_headers=True,
    )
    DrainingServer(config, app, settings.timeouts.drain_s).run()
