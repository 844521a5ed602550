"""HTTP routes of working hours and notifications (docs/notifications.md).

    GET  /api/conversations/{conv}            one conversation as in `ready`, with the staff's
                                              availability
    GET  /api/me/working-hours                staff: their weekly hours (or the school default)
    PUT  /api/me/working-hours                staff: {"mon": [["07:30", "16:00"]], ...}; held
                                              notifications are re-planned in the same commit
    GET  /api/me/quiet-hours                  parents: their quiet hours
    PUT  /api/me/quiet-hours                  parents: the same shape; {} for none
    GET  /api/me/push-subscriptions           the VAPID public key and the caller's browsers
    POST /api/me/push-subscriptions           PushSubscription.toJSON(): 201 {"id"}
    DELETE /api/me/push-subscriptions         {"endpoint"}: 204 (also when it was not there)
    GET  /api/notifications/holds?school=&limit=&cursor=
                                              every hold and release of the school's staff, for
                                              its principal and admin subjects

A malformed schedule answers 400 `invalid` with every problem listed, like a roster.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from messaging.domain import authz
from messaging.domain.hours import DEFAULT_SCHEDULE, parse_schedule, schedule_to_json
from messaging.domain.models import Person, UserKind
from messaging.domain.notify import parse_quiet_hours
from messaging.errors import HTTP_STATUS, ErrorCode, MessagingError
from messaging.gateway.api import ORJSONResponse, authenticated
from messaging.gateway.services import Services
from messaging.i18n import text
from messaging.notifications.vapid import public_key, subscription_problem
from messaging.store import conversations as convs
from messaging.store import notifications as store
from messaging.store.pool import translated_errors
from messaging.store.roster import load_person

MAX_BODY_BYTES = 64 * 1024
MAX_HOLDS_PAGE = 200


async def _person(svc: Services, subject: str) -> Person:
    async with translated_errors(), svc.pool.acquire() as db:
        person = await load_person(db, subject)
    if person is None or not person.active:
        raise MessagingError(ErrorCode.FORBIDDEN)
    return person


async def _json(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise MessagingError(ErrorCode.TOO_LARGE)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MessagingError(ErrorCode.INVALID, "invalid_frame") from None


def _problems(key: str, locale: str, problems: list[tuple[str, str]]) -> Response:
    body = {
        "code": ErrorCode.INVALID.value,
        "message": text(key, locale, count=len(problems)),
        "errors": [{"path": p, "message": m} for p, m in problems],
    }
    return ORJSONResponse({"error": body}, status_code=HTTP_STATUS[ErrorCode.INVALID])


# One conversation -------------------------------------------------------------------------------


async def conversation(request: Request, svc: Services, subject: str) -> Response:
    await _person(svc, subject)
    conv_id = request.path_params["conv"]
    async with translated_errors(), svc.pool.acquire() as db:
        listed = await convs.conversations_of(db, subject)
    for item in listed:
        if item["conv"] == conv_id:
            return ORJSONResponse(item)
    raise MessagingError(ErrorCode.NOT_FOUND)


# Hours ------------------------------------------------------------------------------------------


async def get_working_hours(request: Request, svc: Services, subject: str) -> Response:
    person = await _person(svc, subject)
    if person.kind is not UserKind.STAFF:
        raise MessagingError(ErrorCode.FORBIDDEN, "staff_only_hours")
    stored = await store.working_hours_of(svc.pool, subject)
    hours = schedule_to_json(DEFAULT_SCHEDULE) if stored is None else stored
    return ORJSONResponse({"working_hours": hours, "default": stored is None})


async def put_working_hours(request: Request, svc: Services, subject: str) -> Response:
    person = await _person(svc, subject)
    if person.kind is not UserKind.STAFF:
        raise MessagingError(ErrorCode.FORBIDDEN, "staff_only_hours")
    schedule, problems = parse_schedule(await _json(request), "")
    if schedule is None:
        return _problems("working_hours_invalid", person.locale, problems)
    replanned = await store.set_working_hours(svc.pool, subject, schedule)
    return ORJSONResponse({"working_hours": schedule_to_json(schedule), "replanned": replanned})


async def get_quiet_hours(request: Request, svc: Services, subject: str) -> Response:
    person = await _person(svc, subject)
    if person.kind is not UserKind.PARENT:
        raise MessagingError(ErrorCode.FORBIDDEN, "parents_only_quiet")
    stored = await store.quiet_hours_of(svc.pool, subject)
    return ORJSONResponse({"quiet_hours": stored if stored is not None else {}})


async def put_quiet_hours(request: Request, svc: Services, subject: str) -> Response:
    person = await _person(svc, subject)
    if person.kind is not UserKind.PARENT:
        raise MessagingError(ErrorCode.FORBIDDEN, "parents_only_quiet")
    quiet, problems = parse_quiet_hours(await _json(request))
    if quiet is None:
        return _problems("quiet_hours_invalid", person.locale, problems)
    stored = None if quiet.empty else quiet
    replanned = await store.set_quiet_hours(svc.pool, subject, stored)
    body = schedule_to_json(quiet) if stored is not None else {}
    return ORJSONResponse({"quiet_hours": body, "replanned": replanned})


# Push subscriptions ----------------------------------------------------------------------------


def _vapid_pem(svc: Services) -> str:
    pem = svc.settings.notify.vapid_private_pem
    if pem is None:
        raise MessagingError(ErrorCode.FEATURE_DISABLED, "push_unavailable")
    return pem


async def list_push(request: Request, svc: Services, subject: str) -> Response:
    await _person(svc, subject)
    pem = svc.settings.notify.vapid_private_pem
    subs = await store.push_subscriptions_of(svc.pool, subject)
    return ORJSONResponse(
        {"vapid_public_key": public_key(pem) if pem else None, "subscriptions": subs}
    )


async def add_push(request: Request, svc: Services, subject: str) -> Response:
    await _person(svc, subject)
    _vapid_pem(svc)
    doc = await _json(request)
    keys = doc.get("keys") if isinstance(doc, dict) else None
    endpoint = doc.get("endpoint") if isinstance(doc, dict) else None
    p256dh = keys.get("p256dh") if isinstance(keys, dict) else None
    auth = keys.get("auth") if isinstance(keys, dict) else None
    problem = subscription_problem(
        endpoint, p256dh, auth, allow_http=svc.settings.notify.push_allow_http
    )
    if problem is not None:
        raise MessagingError(ErrorCode.INVALID, "push_subscription_invalid", problem=problem)
    assert isinstance(endpoint, str) and isinstance(p256dh, str) and isinstance(auth, str)
    sub_id = await store.add_push_subscription(svc.pool, subject, endpoint, p256dh, auth)
    return ORJSONResponse({"id": sub_id}, status_code=201)


async def remove_push(request: Request, svc: Services, subject: str) -> Response:
    await _person(svc, subject)
    doc = await _json(request)
    endpoint = doc.get("endpoint") if isinstance(doc, dict) else None
    if not isinstance(endpoint, str) or not endpoint:
        raise MessagingError(ErrorCode.INVALID, "field_missing", field="endpoint")
    await store.remove_push_subscription(svc.pool, subject, endpoint)
    return Response(status_code=204)


# The principal's record -------------------------------------------------------------------------


def _page_params(request: Request) -> tuple[str, int, int | None]:
    school = (request.query_params.get("school") or "").strip()
    if not school:
        raise MessagingError(ErrorCode.INVALID, "field_missing", field="school")
    try:
        limit = int(request.query_params.get("limit") or 50)
        cursor = request.query_params.get("cursor")
        before = int(cursor) if cursor else None
    except ValueError:
        raise MessagingError(ErrorCode.INVALID, "field_type", field="limit") from None
    if not 1 <= limit <= MAX_HOLDS_PAGE:
        raise MessagingError(ErrorCode.INVALID, "field_range", field="limit", min=1, max=200)
    return school, limit, before


async def holds(request: Request, svc: Services, subject: str) -> Response:
    school, limit, before = _page_params(request)
    if subject not in svc.settings.admin_subjects:
        async with translated_errors(), svc.pool.acquire() as db:
            person = await load_person(db, subject)
        if person is None or authz.may_oversee(person, school) is not None:
            raise MessagingError(ErrorCode.FORBIDDEN, "principal_only_holds")
    found = await store.list_holds(svc.pool, school, before=before, limit=limit)
    cursor = str(found[-1]["id"]) if len(found) == limit else None
    return ORJSONResponse({"holds": found, "next_cursor": cursor})


routes = [
    Route("/api/conversations/{conv}", authenticated(conversation), methods=["GET"]),
    Route("/api/me/working-hours", authenticated(get_working_hours), methods=["GET"]),
    Route("/api/me/working-hours", authenticated(put_working_hours), methods=["PUT"]),
    Route("/api/me/quiet-hours", authenticated(get_quiet_hours), methods=["GET"]),
    Route("/api/me/quiet-hours", authenticated(put_quiet_hours), methods=["PUT"]),
    Route("/api/me/push-subscriptions", authenticated(list_push), methods=["GET"]),
    Route("/api/me/push-subscriptions", authenticated(add_push), methods=["POST"]),
    Route("/api/me/push-subscriptions", authenticated(remove_push), methods=["DELETE"]),
    Route("/api/notifications/holds", authenticated(holds), methods=["GET"]),
]
