"""The web client's routes: its files, the directory it shows names from, and dev sign-in.

    GET  /                        index.html (no-cache), with a strict Content-Security-Policy
    GET  /app/{version}/{path}    the client's ES modules, CSS and icons; `version` is a hash of
                                  all of them, so they are cached for a year and never stale
    GET  /api/directory           names and links the client shows: the caller's schools, groups,
                                  visible students, the people of their conversations and those
                                  they may start one with (by the rules of `domain.authz`), and
                                  staff availability (working now, next working start)
    POST /api/dev/login {user}    a 12-hour token for any active roster user; only with
                                  MESSAGING_DEV_LOGIN=1 (else 404, as if it did not exist)
    GET  /api/dev/users           the roster's active users, for the dev sign-in page; same rule

In production the page gets its token from the host application (docs/web-client.md): a URL
fragment or a postMessage from an origin of MESSAGING_ALLOWED_ORIGINS, never a query string.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from messaging.domain import authz
from messaging.domain.hours import (
    DEFAULT_SCHEDULE,
    WeeklySchedule,
    is_working,
    next_working_start,
    parse_schedule,
    schedule_to_json,
)
from messaging.domain.models import Person, Role, School, UserKind
from messaging.errors import ErrorCode, MessagingError
from messaging.gateway.api import ORJSONResponse, authenticated
from messaging.gateway.auth import mint_token
from messaging.gateway.services import Services
from messaging.protocol.frames import iso_utc
from messaging.store.pool import Connection, translated_errors
from messaging.store.roster import load_people, load_person, load_school

log = structlog.get_logger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DEV_TOKEN_TTL_S = 12 * 3600
MAX_LOGIN_BYTES = 4096

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
}

NO_STORE = {"Cache-Control": "no-store"}
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?")
IMMUTABLE = "public, max-age=31536000, immutable"


def content_security_policy(frame_ancestors: frozenset[str]) -> str:
    """Nothing inline, nothing from elsewhere: scripts, styles and images come from this origin
    (images also from `blob:`, the attachment previews fetched with the token); connections go
    to this origin only (CSP 3: 'self' covers ws: and wss: of the same host). The host
    application's origins may frame the page."""
    ancestors = " ".join(["'self'", *sorted(frame_ancestors)])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        "connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'none'; "
        f"base-uri 'none'; object-src 'none'; frame-ancestors {ancestors}"
    )


def _page_headers(request: Request) -> dict[str, str]:
    settings = request.app.state.settings
    return {
        "Content-Security-Policy": content_security_policy(settings.allowed_origins),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }


# Files -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Assets:
    """The client's files, read once: small, and the version must name exactly these bytes."""

    version: str
    files: dict[str, Asset]
    index: bytes

    @classmethod
    def load(cls, root: Path) -> Assets:
        files: dict[str, Asset] = {}
        for path in sorted(root.rglob("*")):
            kind = CONTENT_TYPES.get(path.suffix)
            if not path.is_file() or kind is None:
                continue
            files[path.relative_to(root).as_posix()] = Asset(path.read_bytes(), kind)
        digest = hashlib.sha256()
        for name, asset in files.items():
            digest.update(name.encode() + b"\0" + hashlib.sha256(asset.body).digest())
        version = digest.hexdigest()[:16]
        template = files.pop("index.html").body
        index = template.replace(b"{{ASSETS}}", f"/app/{version}".encode())
        return cls(version, files, index)


def _assets(request: Request, *, page: bool = False) -> Assets:
    """Read once; under dev login, read again for each page so that edits show on reload."""
    assets: Assets | None = getattr(request.app.state, "web_assets", None)
    if assets is None or (page and request.app.state.settings.dev_login):
        assets = Assets.load(WEB_DIR)
        request.app.state.web_assets = assets
    return assets


async def index(request: Request) -> Response:
    origins = request.app.state.settings.allowed_origins
    # the host application's origins, from which the page accepts a token by postMessage; only
    # characters an origin may have, so nothing can escape the attribute
    listed = " ".join(o for o in sorted(origins) if _ORIGIN.fullmatch(o))
    page = _assets(request, page=True).index.replace(b"{{HOST_ORIGINS}}", listed.encode())
    headers = {**_page_headers(request), "Cache-Control": "no-cache"}
    return Response(page, media_type="text/html", headers=headers)


async def asset(request: Request) -> Response:
    assets = _assets(request)
    found = assets.files.get(request.path_params["path"])
    if found is None:
        return PlainTextResponse("Not Found", status_code=404)
    current = request.path_params["version"] == assets.version
    headers = {
        **_page_headers(request),
        # an old page asking for its version after a deployment gets today's file, uncached
        "Cache-Control": IMMUTABLE if current else "no-cache",
    }
    return Response(found.body, headers=headers, media_type=found.content_type)


# Directory ---------------------------------------------------------------------------------------

_ANY_STUDENT_ROLES = frozenset({Role.OFFICE, Role.PRINCIPAL, Role.DAYCARE})


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("America/Toronto")


@dataclass(frozen=True, slots=True)
class SchoolFacts:
    school: School
    closed_days: frozenset[date]


async def _schools(db: Connection, ids: list[str]) -> dict[str, SchoolFacts]:
    rows = await db.fetch(
        "SELECT id, closed_days FROM schools WHERE id = ANY($1::text[]) AND active", ids
    )
    out: dict[str, SchoolFacts] = {}
    for r in rows:
        school = await load_school(db, r["id"])
        if school is not None:
            out[school.id] = SchoolFacts(school, frozenset(r["closed_days"] or ()))
    return out


def _visible_groups(me: Person, school: str) -> frozenset[str] | None:
    """Class groups whose students `me` sees in `school`; None: all of them."""
    if me.kind is UserKind.PARENT:
        return frozenset().union(*(c.groups for c in me.children_in(school)))
    roles = me.roles_in(school)
    if any(r.role in _ANY_STUDENT_ROLES for r in roles):
        return None
    return frozenset().union(*(r.groups for r in roles))


async def _students(db: Connection, me: Person, schools: list[str]) -> list[dict[str, Any]]:
    """Students `me` may see, with their active parents: a parent's own children; a teacher's
    or support member's groups; every student for office, daycare and the principal."""
    rows = await db.fetch(
        """SELECT s.id, s.school, s.name, s.grade, s.groups,
                  ARRAY(SELECT pc.parent FROM parent_children pc JOIN users u ON u.id = pc.parent
                        WHERE pc.student = s.id AND u.active ORDER BY pc.parent) AS parents
           FROM students s WHERE s.school = ANY($1::text[]) AND s.active
           ORDER BY s.school, s.name, s.id""",
        schools,
    )
    mine = {c.id for c in me.children}
    out = []
    for r in rows:
        groups = frozenset(r["groups"])
        if me.kind is UserKind.PARENT:
            if r["id"] not in mine:
                continue
        else:
            seen = _visible_groups(me, r["school"])
            if seen is not None and not groups & seen:
                continue
        out.append(
            {
                "id": r["id"],
                "school": r["school"],
                "name": r["name"],
                "grade": r["grade"],
                "groups": sorted(groups),
                "parents": list(r["parents"]),
            }
        )
    return out


async def _candidates(db: Connection, me: Person, schools: list[str]) -> list[str]:
    """People the caller might be shown: staff of their schools, parents of the schools where
    they are staff, and everyone in their conversations (broadcast recipients excepted)."""
    staff_of = sorted({r.school for r in me.roles})
    rows = await db.fetch(
        """SELECT user_id AS id FROM staff_roles WHERE school = ANY($1::text[])
           UNION
           SELECT pc.parent FROM parent_children pc JOIN students s ON s.id = pc.student
           WHERE s.school = ANY($2::text[]) AND s.active
           UNION
           SELECT o.user_id FROM members m JOIN conversations c ON c.id = m.conv
           JOIN members o ON o.conv = m.conv
           WHERE m.user_id = $3 AND m.left_at IS NULL
             AND (c.kind <> 'broadcast' OR o.user_id = c.owner OR c.owner = $3)""",
        schools,
        staff_of,
        me.id,
    )
    return [r["id"] for r in rows]


async def _hours(db: Connection, ids: list[str]) -> dict[str, WeeklySchedule]:
    rows = await db.fetch(
        "SELECT id, working_hours FROM users WHERE id = ANY($1::text[]) AND kind = 'staff'", ids
    )
    out = {}
    for r in rows:
        raw = r["working_hours"]
        parsed = parse_schedule(raw, "")[0] if raw is not None else None
        out[r["id"]] = parsed or DEFAULT_SCHEDULE
    return out


def _availability(schedule: WeeklySchedule, facts: SchoolFacts, now: datetime) -> dict[str, Any]:
    zone = _zone(facts.school.timezone)
    if is_working(schedule, facts.closed_days, zone, now):
        return {"working_now": True, "next_working_start": None}
    start = next_working_start(schedule, facts.closed_days, zone, now)
    return {"working_now": False, "next_working_start": iso_utc(start) if start else None}


def _person_json(
    p: Person,
    me: Person,
    schools: dict[str, SchoolFacts],
    visible_students: set[str],
    hours: dict[str, WeeklySchedule],
    now: datetime,
) -> dict[str, Any]:
    roles = [r for r in p.roles if r.school in schools]
    out: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "kind": p.kind.value,
        "active": p.active,
        "roles": [
            {"school": r.school, "role": r.role.value, "groups": sorted(r.groups)} for r in roles
        ],
        "children": [c.id for c in p.children if c.id in visible_students],
        "contact": sorted(
            s
            for s, facts in schools.items()
            if p.id != me.id and authz.may_contact(me, p, facts.school) is None
        ),
    }
    if p.kind is UserKind.STAFF and p.id in hours:
        out["availability"] = {
            r.school: _availability(hours[p.id], schools[r.school], now) for r in roles
        }
    return out


def _school_json(facts: SchoolFacts, me: Person, groups: list[dict[str, Any]]) -> dict[str, Any]:
    s = facts.school
    return {
        "id": s.id,
        "name": s.name,
        "timezone": s.timezone,
        "features": {
            "bulk_send": s.features.bulk_send,
            "parent_initiated": s.features.parent_initiated,
            "groups": s.features.groups,
            "attachments": s.features.attachments,
        },
        "roles": sorted(r.role.value for r in me.roles_in(s.id)),
        "groups": [g for g in groups if g["school"] == s.id],
    }


async def directory(request: Request, svc: Services, subject: str) -> Response:
    now = datetime.now(UTC)
    async with translated_errors(), svc.pool.acquire() as db:
        me = await load_person(db, subject)
        if me is None or not me.active:
            raise MessagingError(ErrorCode.FORBIDDEN)
        school_ids = sorted({r.school for r in me.roles} | {c.school for c in me.children})
        schools = await _schools(db, school_ids)
        listed = sorted(schools)
        group_rows = await db.fetch(
            """SELECT id, school, name, grade FROM class_groups
               WHERE school = ANY($1::text[]) AND active ORDER BY school, grade, name""",
            listed,
        )
        students = await _students(db, me, listed)
        people = await load_people(db, await _candidates(db, me, listed))
        hours = await _hours(db, [p.id for p in people.values() if p.kind is UserKind.STAFF])
    groups = [dict(r) for r in group_rows]
    visible = {s["id"] for s in students}
    me_json = _person_json(me, me, schools, visible, hours, now)
    me_json["locale"] = me.locale
    if me.kind is UserKind.STAFF:
        me_json["working_hours"] = schedule_to_json(hours.get(me.id, DEFAULT_SCHEDULE))
    return ORJSONResponse(
        {
            "me": me_json,
            "schools": [_school_json(schools[s], me, groups) for s in listed],
            "students": students,
            "people": [
                _person_json(p, me, schools, visible, hours, now)
                for p in sorted(people.values(), key=lambda p: (p.name, p.id))
                if p.id != me.id
            ],
            "server_time": iso_utc(now),
        },
        headers=NO_STORE,
    )


# Development sign-in -----------------------------------------------------------------------------


def _dev_enabled(request: Request) -> bool:
    settings = request.app.state.settings
    return bool(settings.dev_login and settings.jwt_secret)


def _not_found() -> Response:
    return PlainTextResponse("Not Found", status_code=404)


async def dev_users(request: Request) -> Response:
    if not _dev_enabled(request):
        return _not_found()
    svc: Services = request.app.state.services
    async with translated_errors(), svc.pool.acquire() as db:
        rows = await db.fetch(
            """SELECT u.id, u.name, u.kind, u.locale,
                      ARRAY(SELECT r.role || ':' || r.school FROM staff_roles r
                            WHERE r.user_id = u.id ORDER BY r.school, r.role) AS roles,
                      ARRAY(SELECT s.name FROM parent_children pc
                            JOIN students s ON s.id = pc.student AND s.active
                            WHERE pc.parent = u.id ORDER BY s.name) AS children
               FROM users u WHERE u.active ORDER BY u.kind DESC, u.name, u.id LIMIT 500"""
        )
        schools = await db.fetch("SELECT id, name FROM schools WHERE active ORDER BY name")
    users = []
    for r in rows:
        roles = [dict(zip(("role", "school"), x.split(":", 1), strict=True)) for x in r["roles"]]
        users.append(
            {
                "id": r["id"],
                "name": r["name"],
                "kind": r["kind"],
                "locale": r["locale"],
                "roles": roles,
                "children": list(r["children"]),
            }
        )
    return ORJSONResponse({"users": users, "schools": [dict(s) for s in schools]}, headers=NO_STORE)


async def dev_login(request: Request) -> Response:
    if not _dev_enabled(request):
        return _not_found()
    svc: Services = request.app.state.services
    raw = await request.body()
    try:
        doc = orjson.loads(raw) if len(raw) <= MAX_LOGIN_BYTES else None
    except orjson.JSONDecodeError:
        doc = None
    user = doc.get("user") if isinstance(doc, dict) else None
    if not isinstance(user, str) or not 0 < len(user) <= 128:
        return ORJSONResponse({"error": {"code": "invalid", "message": "user"}}, status_code=400)
    async with translated_errors(), svc.pool.acquire() as db:
        person = await load_person(db, user)
    if person is None or not person.active:
        return ORJSONResponse({"error": {"code": "not_found", "message": "user"}}, status_code=404)
    assert svc.settings.jwt_secret is not None
    log.info("dev_login", user_id=user)
    token = mint_token(svc.settings.jwt_secret, user, ttl_s=DEV_TOKEN_TTL_S)
    return ORJSONResponse({"token": token, "expires_in": DEV_TOKEN_TTL_S}, headers=NO_STORE)


routes = [
    Route("/", index, methods=["GET"]),
    Route("/app/{version}/{path:path}", asset, methods=["GET"]),
    Route("/api/directory", authenticated(directory), methods=["GET"]),
    Route("/api/dev/users", dev_users, methods=["GET"]),
    Route("/api/dev/login", dev_login, methods=["POST"]),
]
