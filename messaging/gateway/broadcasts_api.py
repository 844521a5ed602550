"""Bulk sends over HTTP: POST /api/broadcasts and its statistics, history, reminder, cancel."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from messaging.domain.broadcast import RequestInvalid, parse_request
from messaging.errors import ErrorCode, MessagingError
from messaging.gateway.api import ORJSONResponse, _person, authenticated
from messaging.gateway.services import Services
from messaging.store import broadcasts as store

log = structlog.get_logger(__name__)

MAX_REQUEST_BYTES = 256 * 1024
MAX_KEY_CHARS = 128


async def create(request: Request, svc: Services, subject: str) -> Response:
    sender = await _person(svc, subject)
    raw = await request.body()
    if len(raw) > MAX_REQUEST_BYTES:
        raise MessagingError(ErrorCode.TOO_LARGE)
    try:
        doc = orjson.loads(raw)
        req = parse_request(doc, datetime.now(UTC))
    except orjson.JSONDecodeError:
        raise MessagingError(ErrorCode.INVALID, "invalid_frame") from None
    except RequestInvalid as exc:
        raise MessagingError(exc.code, exc.reason, field=exc.field) from None
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY_CHARS:
        raise MessagingError(ErrorCode.INVALID, "field_type", field="Idempotency-Key")
    sent = await store.create_broadcast(svc.pool, sender, req, key)
    if sent.events:
        svc.publish_broadcast(sent)
    log.info(
        "broadcast_created",
        broadcast=sent.broadcast,
        recipients=sent.recipient_count,
        scheduled=sent.scheduled,
        replayed=sent.replayed,
    )
    return ORJSONResponse(
        {
            "broadcast": sent.broadcast,
            "conv": sent.conv,
            "recipients": sent.recipient_count,
            "scheduled": sent.scheduled,
        },
        status_code=202,
    )


async def show(request: Request, svc: Services, subject: str) -> Response:
    viewer = await _person(svc, subject)
    return ORJSONResponse(await store.stats(svc.pool, viewer, request.path_params["id"]))


async def listing(request: Request, svc: Services, subject: str) -> Response:
    viewer = await _person(svc, subject)
    school = request.query_params.get("school")
    if not school:
        raise MessagingError(ErrorCode.INVALID, "field_missing", field="school")
    return ORJSONResponse({"broadcasts": await store.history(svc.pool, viewer, school)})


async def remind(request: Request, svc: Services, subject: str) -> Response:
    """Notify again only the recipients who have not read the broadcast."""
    viewer = await _person(svc, subject)
    broadcast_id = request.path_params["id"]
    reminded = await store.remind(svc.pool, viewer, broadcast_id)
    log.info("broadcast_reminded", broadcast=broadcast_id, recipients=reminded)
    return ORJSONResponse({"broadcast": broadcast_id, "reminded": reminded}, status_code=202)


async def cancel(request: Request, svc: Services, subject: str) -> Response:
    viewer = await _person(svc, subject)
    await store.cancel(svc.pool, viewer, request.path_params["id"])
    return ORJSONResponse({"broadcast": request.path_params["id"], "state": "cancelled"})


routes = [
    Route("/api/broadcasts", authenticated(create), methods=["POST"]),
    Route("/api/broadcasts", authenticated(listing), methods=["GET"]),
    Route("/api/broadcasts/{id}", authenticated(show), methods=["GET"]),
    Route("/api/broadcasts/{id}", authenticated(cancel), methods=["DELETE"]),
    Route("/api/broadcasts/{id}/remind", authenticated(remind), methods=["POST"]),
]
