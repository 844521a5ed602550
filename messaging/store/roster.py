"""The roster in Postgres: importing a roster document, and loading the facts the rules need."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from messaging.domain.hours import schedule_to_json
from messaging.domain.models import Child, Features, Person, Role, School, StaffRole, UserKind
from messaging.domain.roster import KnownIds, Roster, validate_roster
from messaging.store.log import Append, Appended, accept, append_batch
from messaging.store.pool import translated_errors

SYSTEM_ACTOR = "system"


@dataclass(frozen=True, slots=True)
class ImportResult:
    schools: int
    groups: int
    staff: int
    students: int
    parents: int
    deactivated_users: tuple[str, ...]
    # `locked` events of groups left without any staff member of their school
    events: tuple[Appended, ...] = ()


async def load_people(conn: asyncpg.Connection, ids: Iterable[str]) -> dict[str, Person]:
    """The persons with these ids, with their roles and children; unknown ids are absent."""
    ids = list(dict.fromkeys(ids))
    users = await conn.fetch(
        "SELECT id, kind, name, locale, active FROM users WHERE id = ANY($1::text[])", ids
    )
    roles = await conn.fetch(
        "SELECT user_id, school, role, groups FROM staff_roles WHERE user_id = ANY($1::text[])",
        ids,
    )
    children = await conn.fetch(
        """SELECT pc.parent, s.id, s.school, s.grade, s.groups
           FROM parent_children pc JOIN students s ON s.id = pc.student
           WHERE pc.parent = ANY($1::text[]) AND s.active""",
        ids,
    )
    roles_of: dict[str, list[StaffRole]] = {}
    for r in roles:
        roles_of.setdefault(r["user_id"], []).append(
            StaffRole(r["school"], Role(r["role"]), frozenset(r["groups"]))
        )
    children_of: dict[str, list[Child]] = {}
    for c in children:
        children_of.setdefault(c["parent"], []).append(
            Child(c["id"], c["school"], c["grade"], frozenset(c["groups"]))
        )
    return {
        u["id"]: Person(
            id=u["id"],
            kind=UserKind(u["kind"]),
            name=u["name"],
            locale=u["locale"],
            active=u["active"],
            roles=tuple(roles_of.get(u["id"], ())),
            children=tuple(children_of.get(u["id"], ())),
        )
        for u in users
    }


async def load_person(conn: asyncpg.Connection, user_id: str) -> Person | None:
    return (await load_people(conn, [user_id])).get(user_id)


def _features(raw: dict[str, Any] | None) -> Features:
    raw = raw or {}
    defaults = Features()
    return Features(
        bulk_send=bool(raw.get("bulk_send", defaults.bulk_send)),
        parent_initiated=bool(raw.get("parent_initiated", defaults.parent_initiated)),
        groups=bool(raw.get("groups", defaults.groups)),
        attachments=bool(raw.get("attachments", defaults.attachments)),
        notify_text=bool(raw.get("notify_text", defaults.notify_text)),
    )


async def load_school(conn: asyncpg.Connection, school_id: str) -> School | None:
    row = await conn.fetchrow(
        "SELECT id, name, timezone, features FROM schools WHERE id = $1 AND active", school_id
    )
    if row is None:
        return None
    return School(row["id"], row["name"], row["timezone"], _features(row["features"]))


async def _known_ids(conn: asyncpg.Connection) -> KnownIds:
    schools = await conn.fetch("SELECT id FROM schools")
    groups = await conn.fetch("SELECT id, school FROM class_groups")
    students = await conn.fetch("SELECT id, school FROM students")
    users = await conn.fetch("SELECT id, kind FROM users")
    return KnownIds(
        schools=frozenset(r["id"] for r in schools),
        groups={r["id"]: r["school"] for r in groups},
        students={r["id"]: r["school"] for r in students},
        users={r["id"]: UserKind(r["kind"]) for r in users},
    )


# Upserts change a row only when something differs, so importing the same document twice
# changes nothing at all (not even a timestamp).
_UPSERT_SCHOOL = """
INSERT INTO schools (id, name, service_centre, timezone, features, closed_days, active)
VALUES ($1, $2, $3, $4, $5, $6, true)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, service_centre = EXCLUDED.service_centre,
    timezone = EXCLUDED.timezone, features = EXCLUDED.features,
    closed_days = EXCLUDED.closed_days, active = true, updated_at = now()
WHERE (schools.name, schools.service_centre, schools.timezone, schools.features,
       schools.closed_days, schools.active)
   IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.service_centre, EXCLUDED.timezone,
       EXCLUDED.features, EXCLUDED.closed_days, true)
"""
_UPSERT_GROUP = """
INSERT INTO class_groups (id, school, name, grade, active) VALUES ($1, $2, $3, $4, true)
ON CONFLICT (id) DO UPDATE SET school = EXCLUDED.school, name = EXCLUDED.name,
    grade = EXCLUDED.grade, active = true
WHERE (class_groups.school, class_groups.name, class_groups.grade, class_groups.active)
   IS DISTINCT FROM (EXCLUDED.school, EXCLUDED.name, EXCLUDED.grade, true)
"""
_UPSERT_USER = """
INSERT INTO users (id, kind, name, email, locale, working_hours, active)
VALUES ($1, $2, $3, $4, $5, $6, true)
ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name,
    email = EXCLUDED.email, locale = EXCLUDED.locale, working_hours = EXCLUDED.working_hours,
    active = true, updated_at = now()
WHERE (users.kind, users.name, users.email, users.locale, users.working_hours, users.active)
   IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.name, EXCLUDED.email, EXCLUDED.locale,
       EXCLUDED.working_hours, true)
"""
_UPSERT_STUDENT = """
INSERT INTO students (id, school, name, grade, groups, active) VALUES ($1, $2, $3, $4, $5, true)
ON CONFLICT (id) DO UPDATE SET school = EXCLUDED.school, name = EXCLUDED.name,
    grade = EXCLUDED.grade, groups = EXCLUDED.groups, active = true
WHERE (students.school, students.name, students.grade, students.groups, students.active)
   IS DISTINCT FROM (EXCLUDED.school, EXCLUDED.name, EXCLUDED.grade, EXCLUDED.groups, true)
"""


async def import_roster(pool: asyncpg.Pool, doc: object) -> ImportResult:
    """Validate the whole document, then apply it in one transaction; nothing on error.

    Raises RosterInvalid listing every problem. Serialised by an advisory lock so that two
    imports never interleave.
    """
    async with translated_errors(), pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(724012)")
        roster = validate_roster(doc, await _known_ids(conn))
        await _apply(conn, roster)
        deactivated = await _replace(conn, roster)
        events = await _lock_staffless_groups(conn, [s.id for s in roster.schools])
        return ImportResult(
            schools=len(roster.schools),
            groups=len(roster.groups),
            staff=len(roster.staff),
            students=len(roster.students),
            parents=len(roster.parents),
            deactivated_users=tuple(deactivated),
            events=tuple(events),
        )


async def _apply(conn: asyncpg.Connection, roster: Roster) -> None:
    await conn.executemany(
        _UPSERT_SCHOOL,
        [
            (
                s.id,
                s.name,
                s.service_centre,
                s.timezone,
                {
                    "bulk_send": s.features.bulk_send,
                    "parent_initiated": s.features.parent_initiated,
                    "groups": s.features.groups,
                    "attachments": s.features.attachments,
                    "notify_text": s.features.notify_text,
                },
                list(s.closed_days),
            )
            for s in roster.schools
        ],
    )
    await conn.executemany(
        _UPSERT_GROUP, [(g.id, g.school, g.name, g.grade) for g in roster.groups]
    )
    await conn.executemany(
        _UPSERT_USER,
        [
            (
                s.id,
                "staff",
                s.name,
                s.email,
                s.locale,
                schedule_to_json(s.schedule) if s.schedule is not None else None,
            )
            for s in roster.staff
        ]
        + [(p.id, "parent", p.name, p.email, p.locale, None) for p in roster.parents],
    )
    await conn.executemany(
        _UPSERT_STUDENT,
        [(s.id, s.school, s.name, s.grade, list(s.groups)) for s in roster.students],
    )
    await _set_roles(conn, roster)
    await _set_children(conn, roster)


async def _set_roles(conn: asyncpg.Connection, roster: Roster) -> None:
    """A staff member's roles in the schools this document speaks for are the listed ones."""
    doc_schools = {s.id for s in roster.schools}
    for staff in roster.staff:
        scope = doc_schools | {r.school for r in staff.roles}
        wanted = {(r.school, r.role.value): sorted(r.groups) for r in staff.roles}
        rows = await conn.fetch(
            "SELECT school, role, groups FROM staff_roles"
            " WHERE user_id = $1 AND school = ANY($2::text[])",
            staff.id,
            sorted(scope),
        )
        have = {(r["school"], r["role"]): sorted(r["groups"]) for r in rows}
        if have == wanted:
            continue
        await conn.execute(
            "DELETE FROM staff_roles WHERE user_id = $1 AND school = ANY($2::text[])",
            staff.id,
            sorted(scope),
        )
        await conn.executemany(
            "INSERT INTO staff_roles (user_id, school, role, groups) VALUES ($1, $2, $3, $4)",
            [(staff.id, school, role, groups) for (school, role), groups in wanted.items()],
        )


async def _set_children(conn: asyncpg.Connection, roster: Roster) -> None:
    """A parent's children in the schools this document speaks for are the listed ones."""
    doc_schools = {s.id for s in roster.schools}
    student_school = {s.id: s.school for s in roster.students}
    for parent in roster.parents:
        listed = set(parent.children)
        rows = await conn.fetch(
            """SELECT pc.student, s.school FROM parent_children pc
               JOIN students s ON s.id = pc.student WHERE pc.parent = $1""",
            parent.id,
        )
        known_school = {r["student"]: r["school"] for r in rows}
        scope = doc_schools | {student_school.get(c) or known_school.get(c, "") for c in listed}
        have = {r["student"] for r in rows if r["school"] in scope}
        for gone in have - listed:
            await conn.execute(
                "DELETE FROM parent_children WHERE parent = $1 AND student = $2", parent.id, gone
            )
        await conn.executemany(
            "INSERT INTO parent_children (parent, student) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(parent.id, c) for c in sorted(listed - have)],
        )


async def _replace(conn: asyncpg.Connection, roster: Roster) -> list[str]:
    """For schools marked `replace`, deactivate what the document no longer names.

    Returns the users who lost their last link to any school: their sockets are to be closed.
    """
    deactivated: list[str] = []
    for school in (s for s in roster.schools if s.replace):
        named_groups = [g.id for g in roster.groups if g.school == school.id]
        named_students = [s.id for s in roster.students if s.school == school.id]
        named_staff = [s.id for s in roster.staff]
        named_parents = [p.id for p in roster.parents]
        await conn.execute(
            "UPDATE class_groups SET active = false"
            " WHERE school = $1 AND active AND NOT id = ANY($2::text[])",
            school.id,
            named_groups,
        )
        await conn.execute(
            "UPDATE students SET active = false"
            " WHERE school = $1 AND active AND NOT id = ANY($2::text[])",
            school.id,
            named_students,
        )
        dropped_staff = await conn.fetch(
            "DELETE FROM staff_roles WHERE school = $1 AND NOT user_id = ANY($2::text[])"
            " RETURNING user_id",
            school.id,
            named_staff,
        )
        dropped_parents = await conn.fetch(
            """DELETE FROM parent_children pc USING students s
               WHERE s.id = pc.student AND s.school = $1 AND NOT pc.parent = ANY($2::text[])
               RETURNING pc.parent""",
            school.id,
            named_parents,
        )
        candidates = {r["user_id"] for r in dropped_staff} | {r["parent"] for r in dropped_parents}
        deactivated += await _deactivate_unlinked(conn, candidates)
    return deactivated


async def _deactivate_unlinked(
    conn: asyncpg.Connection, ids: Sequence[str] | set[str]
) -> list[str]:
    rows = await conn.fetch(
        """UPDATE users u SET active = false, updated_at = now()
           WHERE u.id = ANY($1::text[]) AND u.active
             AND NOT EXISTS (SELECT 1 FROM staff_roles r WHERE r.user_id = u.id)
             AND NOT EXISTS (SELECT 1 FROM parent_children pc JOIN students s ON s.id = pc.student
                             WHERE pc.parent = u.id AND s.active)
           RETURNING u.id""",
        sorted(ids),
    )
    return [r["id"] for r in rows]


async def _lock_staffless_groups(conn: asyncpg.Connection, schools: list[str]) -> list[Appended]:
    """A group keeps a staff member of its school at all times: one whose role was removed or
    whose account was deactivated by this import leaves the group locked, as when they leave."""
    rows = await conn.fetch(
        """SELECT c.id FROM conversations c
           WHERE c.school = ANY($1::text[]) AND c.kind = 'group' AND NOT c.locked
             AND NOT EXISTS (
                 SELECT 1 FROM members m
                 JOIN users u ON u.id = m.user_id AND u.active
                 JOIN staff_roles r ON r.user_id = m.user_id AND r.school = c.school
                 WHERE m.conv = c.id AND m.left_at IS NULL)
           ORDER BY c.id""",
        schools,
    )
    items = [
        Append(
            conv=r["id"],
            actor=SYSTEM_ACTOR,
            kind="locked",
            rule=accept,
            data={"reason": "no_staff"},
            sets_locked=True,
        )
        for r in rows
    ]
    if not items:
        return []
    return [o for o in await append_batch(conn, items) if isinstance(o, Appended)]
