"""The Starlette application: `create_app(settings)` builds everything in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import AsyncIterator

import structlog
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from messaging.bus.cluster import create_bus
from messaging.bus.hub import FANOUT_CHANNEL, Hub
from messaging.config import Settings
from messaging.gateway import (
    api,
    attachments_api,
    audit_api,
    broadcasts_api,
    health,
    notifications_api,
    socket,
    web,
)
from messaging.gateway.auth import TokenVerifier
from messaging.gateway.delivery import DeliveryTracker
from messaging.gateway.metrics import Metrics
from messaging.gateway.services import Services
from messaging.protocol.frames import resync
from messaging.store.batcher import AppendBatcher
from messaging.store.pool import create_pool

log = structlog.get_logger(__name__)


def _verifier(settings: Settings) -> TokenVerifier:
    keys = settings.jwt_public_keys_file.read_bytes() if settings.jwt_public_keys_file else None
    return TokenVerifier(hs256_secret=settings.jwt_secret, public_keys_pem=keys)


def _supervise(task: asyncio.Task[None], name: str) -> None:
    """A background task that dies takes the process down loudly, never silently."""

    def done(t: asyncio.Task[None]) -> None:
        if t.cancelled():
            return
        exc = t.exception()
        log.critical("background_task_died", task=name, error=repr(exc))
        os.kill(os.getpid(), signal.SIGTERM)

    task.add_done_callback(done)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics = Metrics()
    pool = await create_pool(
        settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    hub = Hub()

    def on_interrupted() -> None:
        metrics.redis_reconnects.inc()
        hub.deliver_local(resync(None))

    bus = create_bus(
        settings.redis_url,
        hub.on_message,
        on_interrupted,
        retry_max_s=settings.timeouts.redis_retry_max_s,
    )
    hub.bus = bus
    await bus.subscribe(FANOUT_CHANNEL)
    deliveries = DeliveryTracker(pool)
    hub.on_delivered = deliveries.add
    services: Services

    def on_commit(events: list) -> None:  # type: ignore[type-arg]
        services.publish_events(events)

    def observe(size: int, _seconds: float) -> None:
        metrics.batch_size.observe(size)

    batcher = AppendBatcher(pool, on_commit, max_batch=settings.limits.batch_max, observe=observe)
    services = Services(
        settings=settings,
        pool=pool,
        hub=hub,
        bus=bus,
        batcher=batcher,
        verifier=_verifier(settings),
        metrics=metrics,
        deliveries=deliveries,
    )
    app.state.services = services
    tasks = [
        asyncio.create_task(bus.run()),
        asyncio.create_task(batcher.run()),
        asyncio.create_task(deliveries.run()),
    ]
    for task, name in zip(tasks, ("bus", "batcher", "deliveries"), strict=True):
        _supervise(task, name)
    # Everything allocated so far lives as long as the process: keep it out of the collector's
    # scans, and collect the young generation less often (a busy gateway allocates a lot of
    # short-lived frames; full collections stalled the loop for ~200 ms under load).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    log.info("gateway_started", gateway=services.gateway_id)
    try:
        yield
    finally:
        services.draining = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await deliveries.flush()
        await bus.aclose()
        await pool.close()
        log.info("gateway_stopped", gateway=services.gateway_id)


def create_app(settings: Settings) -> Starlette:
    app = Starlette(
        routes=[
            *web.routes,
            WebSocketRoute("/ws", socket.endpoint),
            *health.routes,
            *api.routes,
            *audit_api.routes,
            *attachments_api.routes,
            *broadcasts_api.routes,
            *notifications_api.routes,
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
