"""The principal's audit API (PROTOCOL.md sections 6 and 7).

    GET /api/audit/conversations?school=&q=&from=&to=&member=&limit=&cursor=
    GET /api/audit/conversations/{conv}
    GET /api/audit/conversations/{conv}/export?format=pdf|json&locale=fr|en
    GET /api/audit/reads?school=&limit=&cursor=

Who may: an active principal of the school, and the admin subjects. Anyone else gets
`forbidden` for a school (the list, the reads) and `not_found` for a conversation, whose
existence is not disclosed; the refusal is logged, without content. Every successful call
appends one audit record in the same transaction as its read: the response leaves only once
both are committed. Nothing here is redacted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from messaging import audit_export
from messaging.domain import authz
from messaging.domain.authz import Denial
from messaging.domain.chain import canonical_ts
from messaging.domain.models import Person
from messaging.errors import ErrorCode, MessagingError
from messaging.gateway.api import ORJSONResponse, error_response
from messaging.gateway.auth import bearer_token
from messaging.gateway.services import Services
from messaging.store import audit
from messaging.store.pool import Connection, translated_errors
from messaging.store.roster import load_person

log = structlog.get_logger(__name__)

MAX_PAGE = 100
DEFAULT_PAGE = 50
MAX_QUERY_CHARS = 500
MAX_ID_CHARS = 128
NO_STORE = {"Cache-Control": "no-store"}


# Who reads ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Auditor:
    """The token's subject: a roster user, an admin subject, or both."""

    id: str
    name: str
    locale: str
    admin: bool
    person: Person | None

    def denial(self, school: str) -> Denial | None:
        if self.admin:
            return None
        if self.person is None:
            return authz.PRINCIPAL_ONLY
        return authz.may_oversee(self.person, school)


async def _auditor(db: Connection, svc: Services, subject: str, request: Request) -> Auditor:
    person = await load_person(db, subject)
    accept = request.headers.get("accept-language", "").lower()
    return Auditor(
        id=subject,
        name=person.name if person is not None else subject,
        locale=person.locale if person is not None else ("en" if accept[:2] == "en" else "fr"),
        admin=subject in svc.settings.admin_subjects,
        person=person,
    )


def _address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


@contextlib.asynccontextmanager
async def _transaction(svc: Services) -> AsyncIterator[Connection]:
    """One snapshot for the whole read, committed together with its record."""
    async with (
        translated_errors(),
        svc.pool.acquire() as db,
        db.transaction(isolation="repeatable_read"),
    ):
        yield db


# Parameters ---------------------------------------------------------------------------------------


def _text(request: Request, name: str, max_chars: int) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if "\x00" in raw:
        raise MessagingError(ErrorCode.INVALID, "field_invalid", field=name)
    if len(raw) > max_chars:
        raise MessagingError(ErrorCode.INVALID, "field_too_long", field=name, max=max_chars)
    return raw.strip() or None


def _required(request: Request, name: str) -> str:
    value = _text(request, name, MAX_ID_CHARS)
    if value is None:
        raise MessagingError(ErrorCode.INVALID, "field_missing", field=name)
    return value


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_PAGE
    try:
        value = int(raw)
    except ValueError:
        raise MessagingError(ErrorCode.INVALID, "field_type", field="limit") from None
    if not 1 <= value <= MAX_PAGE:
        raise MessagingError(ErrorCode.INVALID, "field_range", field="limit", min=1, max=MAX_PAGE)
    return value


def _choice(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and value not in choices:
        raise MessagingError(ErrorCode.INVALID, "field_invalid", field=name)
    return value


def _encode_cursor(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).rstrip(b"=").decode()


def _cursor(request: Request, tag: str) -> list[Any] | None:
    """The cursor's parts after its tag; `invalid` for anything this API did not make."""
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    try:
        if len(raw) > 512:
            raise ValueError("too long")
        parts = orjson.loads(base64.b64decode(raw + "=" * (-len(raw) % 4), b"-_", validate=True))
        if not isinstance(parts, list) or not parts or parts[0] != tag:
            raise ValueError("not a cursor")
        return parts[1:]
    except (ValueError, binascii.Error):
        raise MessagingError(ErrorCode.INVALID, "field_invalid", field="cursor") from None


def _conv_keyset(request: Request) -> audit.Keyset | None:
    parts = _cursor(request, "c")
    if parts is None:
        return None
    try:
        ts, conv = parts
        when = datetime.fromisoformat(ts)
        if when.tzinfo is None or not isinstance(conv, str):
            raise ValueError("bad keyset")
    except (ValueError, TypeError):
        raise MessagingError(ErrorCode.INVALID, "field_invalid", field="cursor") from None
    return when, conv


def _reads_keyset(request: Request) -> int | None:
    parts = _cursor(request, "r")
    if parts is None:
        return None
    if len(parts) != 1 or type(parts[0]) is not int or not 0 < parts[0] < 2**62:
        raise MessagingError(ErrorCode.INVALID, "field_invalid", field="cursor")
    return int(parts[0])


def _bound(request: Request, name: str) -> date | None:
    """A date (a whole day in the school's time zone) or a datetime (naive: the school's)."""
    raw = _text(request, name, 64)
    if raw is None:
        return None
    try:
        if len(raw) <= 10 and "T" not in raw:
            return date.fromisoformat(raw)
        return datetime.fromisoformat(raw)
    except ValueError:
        raise MessagingError(ErrorCode.INVALID, "field_invalid", field=name) from None


_FAR_PAST = datetime.min.replace(tzinfo=UTC)
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


def _instant(value: date | None, zone: ZoneInfo, *, end: bool) -> datetime | None:
    """The bound as a UTC instant: `from` inclusive, `to` exclusive (a `to` date covers its
    whole day, a `to` datetime itself). None when unbounded; ranges as wide as the calendar
    (years 1 to 9999) are clamped rather than refused."""
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            moment = value if value.tzinfo is not None else value.replace(tzinfo=zone)
            if end:
                moment += timedelta(microseconds=1)
        else:
            moment = datetime.combine(value + timedelta(days=1) if end else value, time.min, zone)
        return moment.astimezone(UTC)
    except OverflowError:
        late = value.year > 1
        if end:
            return None if late else _FAR_PAST
        return _FAR_FUTURE if late else None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("America/Toronto")


@dataclass(frozen=True, slots=True)
class _Search:
    school: str
    q: str | None
    since: date | None
    until: date | None
    member: str | None
    after: audit.Keyset | None
    limit: int

    @classmethod
    def parse(cls, request: Request) -> _Search:
        return cls(
            school=_required(request, "school"),
            q=_text(request, "q", MAX_QUERY_CHARS),
            since=_bound(request, "from"),
            until=_bound(request, "to"),
            member=_text(request, "member", MAX_ID_CHARS),
            after=_conv_keyset(request),
            limit=_limit(request),
        )

    def filters(self, zone: ZoneInfo) -> audit.Filters:
        since = _instant(self.since, zone, end=False)
        until = _instant(self.until, zone, end=True)
        if since is not None and until is not None and since >= until:
            raise MessagingError(ErrorCode.INVALID, "field_invalid", field="to")
        return audit.Filters(q=self.q, since=since, until=until, member=self.member)

    def record(self, request: Request) -> dict[str, Any]:
        """The search as the principal asked it, for the audit record."""
        asked = {k: request.query_params.get(k) for k in ("q", "from", "to", "member", "cursor")}
        return {**{k: v for k, v in asked.items() if v}, "limit": self.limit}


# Handlers -----------------------------------------------------------------------------------------


def _refuse_school(auditor: Auditor, school: str, timezone: str | None) -> None:
    denial = auditor.denial(school)
    if denial is not None:
        raise MessagingError(denial.code, denial.reason)
    if timezone is None:  # only an admin gets here: a principal's role names an existing school
        raise MessagingError(ErrorCode.NOT_FOUND)


def _summary(c: audit.ConvSummary, names: dict[str, str]) -> dict[str, Any]:
    return {
        "conv": c.conv,
        "school": c.school,
        "kind": c.kind,
        "title": c.title,
        "owner": c.owner,
        "created_at": canonical_ts(c.created_at),
        "last_seq": c.last_seq,
        "last_activity": canonical_ts(c.last_ts) if c.last_ts is not None else None,
        "locked": c.locked,
        "member_count": c.member_count,
        "members": [{"id": m, "name": names.get(m)} for m in c.members],
    }


async def list_conversations(request: Request, svc: Services, subject: str) -> Response:
    search = _Search.parse(request)
    async with _transaction(svc) as db:
        auditor = await _auditor(db, svc, subject, request)
        timezone = await audit.school_timezone(db, search.school)
        _refuse_school(auditor, search.school, timezone)
        assert timezone is not None
        filters = search.filters(_zone(timezone))
        record = await audit.record_read(
            db,
            school=search.school,
            reader=subject,
            action="list",
            search=search.record(request),
            address=_address(request),
        )
        found, more = await audit.search_conversations(
            db, search.school, filters, after=search.after, limit=search.limit
        )
        names = await audit.names_of(db, (m for c in found for m in c.members))
    log.info("audit_read", action="list", school=search.school, record=record.id)
    return ORJSONResponse(
        {
            "conversations": [_summary(c, names) for c in found],
            "next": _encode_cursor(["c", more[0].isoformat(), more[1]]) if more else None,
        },
        headers=NO_STORE,
    )


async def _conversation_read(
    db: Connection, auditor: Auditor, conv: str, action: str, request: Request
) -> tuple[audit.AuditView, audit.Recorded]:
    """Authorize, record and read one conversation; `not_found` for anyone not allowed."""
    school = await audit.school_of(db, conv)
    if school is None or auditor.denial(school) is not None:
        raise MessagingError(ErrorCode.NOT_FOUND)
    record = await audit.record_read(
        db, school=school, reader=auditor.id, action=action, conv=conv, address=_address(request)
    )
    view = await audit.view_conversation(db, conv)
    assert view is not None
    return view, record


def _conv(request: Request) -> str:
    """The conversation id of the path; one no conversation can have is simply not found."""
    conv = str(request.path_params["conv"])
    if "\x00" in conv or len(conv) > MAX_ID_CHARS:
        raise MessagingError(ErrorCode.NOT_FOUND)
    return conv


async def view_conversation(request: Request, svc: Services, subject: str) -> Response:
    conv = _conv(request)
    async with _transaction(svc) as db:
        auditor = await _auditor(db, svc, subject, request)
        view, record = await _conversation_read(db, auditor, conv, "view", request)
    log.info("audit_read", action="view", school=view.school, conv=conv, record=record.id)
    return ORJSONResponse(audit_export.view_json(view), headers=NO_STORE)


async def export_conversation(request: Request, svc: Services, subject: str) -> Response:
    conv = _conv(request)
    fmt = _choice(request, "format", ("pdf", "json")) or "pdf"
    locale_asked = _choice(request, "locale", ("fr", "en"))
    async with _transaction(svc) as db:
        auditor = await _auditor(db, svc, subject, request)
        view, record = await _conversation_read(db, auditor, conv, f"export_{fmt}", request)
        export = audit_export.Export(
            view=view,
            by=auditor.id,
            by_name=auditor.name,
            at=record.at,
            locale=locale_asked or auditor.locale,
            record=record.id,
        )
        # Rendered before the commit: a document that failed to render leaves no record.
        if fmt == "pdf":
            content = await asyncio.to_thread(audit_export.render_pdf, export)
            media_type = "application/pdf"
        else:
            content = orjson.dumps(audit_export.export_json(export), option=orjson.OPT_INDENT_2)
            media_type = "application/json"
    log.info("audit_read", action=f"export_{fmt}", school=view.school, conv=conv, record=record.id)
    name = audit_export.filename(export, fmt)
    return Response(
        content,
        media_type=media_type,
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


async def list_reads(request: Request, svc: Services, subject: str) -> Response:
    school = _required(request, "school")
    before = _reads_keyset(request)
    limit = _limit(request)
    async with _transaction(svc) as db:
        auditor = await _auditor(db, svc, subject, request)
        _refuse_school(auditor, school, await audit.school_timezone(db, school))
        record = await audit.record_read(
            db, school=school, reader=subject, action="reads", address=_address(request)
        )
        reads, more = await audit.list_reads(db, school, before=before, limit=limit)
    log.info("audit_read", action="reads", school=school, record=record.id)
    return ORJSONResponse(
        {
            "reads": [
                {
                    "id": r.id,
                    "school": r.school,
                    "reader": r.reader,
                    "reader_name": r.reader_name,
                    "conv": r.conv,
                    "search": r.search,
                    "action": r.action,
                    "address": r.address,
                    "at": canonical_ts(r.at),
                }
                for r in reads
            ],
            "next": _encode_cursor(["r", more]) if more is not None else None,
        },
        headers=NO_STORE,
    )


# Routing ------------------------------------------------------------------------------------------

Handler = Callable[[Request, Services, str], Awaitable[Response]]


def _audited(action: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, and log every refusal by code and reason only: no query, no content."""

    async def endpoint(request: Request) -> Response:
        svc: Services = request.app.state.services
        subject: str | None = None
        try:
            token = bearer_token(request.headers.get("authorization"))
            if token is None:
                raise MessagingError(ErrorCode.UNAUTHENTICATED, "token_missing")
            subject = svc.verifier.verify(token).sub
            with structlog.contextvars.bound_contextvars(user_id=subject):
                return await handler(request, svc, subject)
        except MessagingError as exc:
            if exc.code not in (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL):
                log.info(
                    "audit_refused",
                    action=action,
                    reader=subject,
                    school=(request.query_params.get("school") or "")[:MAX_ID_CHARS] or None,
                    conv=str(request.path_params.get("conv", ""))[:MAX_ID_CHARS] or None,
                    code=exc.code.value,
                    reason=exc.reason,
                    address=_address(request),
                )
            return error_response(request, exc)

    return endpoint


routes = [
    Route(
        "/api/audit/conversations",
        _audited("list", list_conversations),
        methods=["GET"],
    ),
    Route(
        "/api/audit/conversations/{conv}",
        _audited("view", view_conversation),
        methods=["GET"],
    ),
    Route(
        "/api/audit/conversations/{conv}/export",
        _audited("export", export_conversation),
        methods=["GET"],
    ),
    Route("/api/audit/reads", _audited("reads", list_reads), methods=["GET"]),
]
