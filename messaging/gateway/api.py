"""The HTTP API under /api: the same data as the WebSocket, and the roster import.

Every route authenticates with `Authorization: Bearer`, answers errors as
`{"error": {"code", "message"}}` with the status of PROTOCOL.md section 5, and checks every read
against who may read it: a conversation the caller may not read answers `not_found`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from messaging.domain import authz
from messaging.domain.models import Person
from messaging.errors import HTTP_STATUS, CloseCode, ErrorCode, MessagingError, RosterInvalid
from messaging.gateway.auth import bearer_token
from messaging.gateway.events import from_stored
from messaging.gateway.services import Services
from messaging.i18n import text
from messaging.store import conversations as convs
from messaging.store.log import read_range
from messaging.store.pool import translated_errors
from messaging.store.roster import import_roster, load_person

log = structlog.get_logger(__name__)

MAX_ROSTER_BYTES = 50 * 1024 * 1024


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _locale(request: Request, user: Person | None) -> str:
    if user is not None:
        return user.locale
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "fr"


def error_response(request: Request, exc: MessagingError, user: Person | None = None) -> Response:
    body: dict[str, Any] = {
        "code": exc.code.value,
        "message": text(exc.reason, _locale(request, user), **exc.params),
    }
    if isinstance(exc, RosterInvalid):
        body["errors"] = [{"path": p, "message": m} for p, m in exc.problems]
    return ORJSONResponse({"error": body}, status_code=HTTP_STATUS[exc.code])


Handler = Callable[[Request, Services, str], Awaitable[Response]]


def authenticated(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Verify the bearer token and turn MessagingErrors into HTTP errors."""

    async def endpoint(request: Request) -> Response:
        svc: Services = request.app.state.services
        try:
            token = bearer_token(request.headers.get("authorization"))
            if token is None:
                raise MessagingError(ErrorCode.UNAUTHENTICATED, "token_missing")
            subject = svc.verifier.verify(token).sub
            with structlog.contextvars.bound_contextvars(user_id=subject):
                return await handler(request, svc, subject)
        except MessagingError as exc:
            if exc.code in (ErrorCode.FORBIDDEN, ErrorCode.UNAUTHENTICATED):
                log.info("api_refused", path=request.url.path, code=exc.code.value)
            return error_response(request, exc)

    return endpoint


async def _person(svc: Services, subject: str) -> Person:
    async with translated_errors(), svc.pool.acquire() as db:
        person = await load_person(db, subject)
    if person is None or not person.active:
        raise MessagingError(ErrorCode.FORBIDDEN)
    return person


async def me(request: Request, svc: Services, subject: str) -> Response:
    person = await _person(svc, subject)
    return ORJSONResponse(
        {
            "id": person.id,
            "name": person.name,
            "kind": person.kind.value,
            "locale": person.locale,
            "roles": [
                {"school": r.school, "role": r.role.value, "groups": sorted(r.groups)}
                for r in person.roles
            ],
            "children": [
                {"id": c.id, "school": c.school, "grade": c.grade, "groups": sorted(c.groups)}
                for c in person.children
            ],
        }
    )


async def conversations(request: Request, svc: Services, subject: str) -> Response:
    await _person(svc, subject)
    async with translated_errors(), svc.pool.acquire() as db:
        listed = await convs.conversations_of(db, subject)
    return ORJSONResponse({"conversations": listed})


def _int_param(request: Request, name: str, lo: int, hi: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise MessagingError(ErrorCode.INVALID, "field_type", field=name) from None
    if not lo <= value <= hi:
        raise MessagingError(ErrorCode.INVALID, "field_type", field=name)
    return value


async def events(request: Request, svc: Services, subject: str) -> Response:
    person = await _person(svc, subject)
    conv_id = request.path_params["conv"]
    after = _int_param(request, "after", 0, 2**53)
    before = _int_param(request, "before", 1, 2**53)
    limit = _int_param(request, "limit", 1, svc.settings.limits.fetch_max) or 50
    async with translated_errors(), svc.pool.acquire() as db:
        facts = await convs.facts_of(db, conv_id)
        denial = authz.may_read(facts, subject) if facts is not None else True
        if denial is not None:
            raise MessagingError(ErrorCode.NOT_FOUND)
        assert facts is not None
        found, more = await read_range(db, conv_id, after=after, before=before, limit=limit)
    return ORJSONResponse(
        {
            "events": [from_stored(ev, subject, facts.kind, person.locale) for ev in found],
            "more": more,
        }
    )


async def roster(request: Request, svc: Services, subject: str) -> Response:
    if subject not in svc.settings.admin_subjects:
        raise MessagingError(ErrorCode.FORBIDDEN, "admin_only")
    raw = await request.body()
    if len(raw) > MAX_ROSTER_BYTES:
        raise MessagingError(ErrorCode.TOO_LARGE)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MessagingError(ErrorCode.INVALID, "invalid_frame") from None
    result = await import_roster(svc.pool, doc)
    svc.publish_events(result.events)
    if result.deactivated_users:
        svc.disconnect_users(result.deactivated_users, CloseCode.REVOKED)
    log.info(
        "roster_imported",
        schools=result.schools,
        staff=result.staff,
        parents=result.parents,
        students=result.students,
        deactivated=len(result.deactivated_users),
    )
    return ORJSONResponse(
        {
            "schools": result.schools,
            "groups": result.groups,
            "staff": result.staff,
            "students": result.students,
            "parents": result.parents,
            "deactivated": list(result.deactivated_users),
        }
    )


routes = [
    Route("/api/me", authenticated(me), methods=["GET"]),
    Route("/api/conversations", authenticated(conversations), methods=["GET"]),
    Route("/api/conversations/{conv}/events", authenticated(events), methods=["GET"]),
    Route("/api/admin/roster", authenticated(roster), methods=["POST"]),
]
