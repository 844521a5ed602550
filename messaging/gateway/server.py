"""Running the app under uvicorn, with a graceful drain on SIGTERM or Ctrl-C.

uvicorn on its own closes every WebSocket with 1012 the moment a signal arrives, dropping what
the connections still had queued. Here the first signal instead marks the process as draining
(`/readyz` answers 503 so a balancer stops sending clients), closes each socket with 1012
once its queued frames are written, and only then lets uvicorn shut down: within the drain
timeout in every case. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import time
from types import FrameType

import structlog
import uvicorn
from starlette.applications import Starlette

from messaging.config import Settings
from messaging.errors import CloseCode
from messaging.gateway.services import Services

log = structlog.get_logger(__name__)


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
        ws="websockets-sansio",
        ws_max_size=settings.limits.max_frame_bytes,
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=2,
        proxy_headers=True,
    )
    DrainingServer(config, app, settings.timeouts.drain_s).run()
