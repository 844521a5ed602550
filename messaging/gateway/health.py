"""Health (`/healthz`: the process is up), readiness (`/readyz`: Postgres and Redis reachable,
not draining) and Prometheus metrics (`/metrics`)."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from messaging.gateway.services import Services


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _postgres_ok(svc: Services) -> bool:
    try:
        async with asyncio.timeout(1.0), svc.pool.acquire() as db:
            return bool(await db.fetchval("SELECT 1") == 1)
    except Exception:
        return False


async def readyz(request: Request) -> Response:
    svc: Services = request.app.state.services
    postgres, redis = await asyncio.gather(_postgres_ok(svc), svc.bus.ping())
    checks = {
        "postgres": postgres,
        "redis": redis and svc.bus.healthy,
        "draining": svc.draining,
    }
    ok = postgres and checks["redis"] and not svc.draining
    return JSONResponse(
        {"status": "ready" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )


async def metrics(request: Request) -> Response:
    svc: Services = request.app.state.services
    return PlainTextResponse(
        generate_latest(svc.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
