"""The roster document (PROTOCOL.md section 8): checked whole, every problem listed.

`validate_roster(doc, known)` returns a `Roster` of plain records or raises `RosterInvalid` with
every (path, message) found, paths like `staff[3].roles[0].school`. Checking runs in two layers:

    structure   each item of each section against a pydantic model: unknown fields, wrong
                types, missing fields
    content     the raw item again, skipping values of the wrong type (already reported), so
                that one bad field never hides another: ids, names, e-mails, locales, time
                zones, closed days, roles, working hours, duplicate ids, and references to
                schools, groups and students, in the document or already in the database
                (`KnownIds`)

Decisions where the protocol is silent: `timezone` defaults to America/Toronto and `features` to
all on; `email` is optional; a staff member needs at least one role and a parent at least one
child; a group never changes school; a student may (a transfer); one id is never both staff and
parent; `working_hours: null` or absent means the school default; closed days are sorted and
deduplicated; grades run from -1 (4-year-old kindergarten) to 12.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from messaging.domain.hours import WeeklySchedule, parse_schedule
from messaging.domain.models import Features, Role, StaffRole, UserKind
from messaging.errors import RosterInvalid

DEFAULT_TIMEZONE = "America/Toronto"
MAX_ID = 128
MAX_NAME = 200
MAX_EMAIL = 254
LOCALES = ("fr", "en")
GRADES = range(-1, 13)
SECTIONS = ("schools", "groups", "staff", "students", "parents")
_ROLES = frozenset(r.value for r in Role)
_ONE_KIND = "one id is never both staff and parent"

Problems = list[tuple[str, str]]


# --- output -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RosterSchool:
    id: str
    name: str
    timezone: str
    features: Features
    closed_days: tuple[date, ...]
    replace: bool = False
    service_centre: str | None = None


@dataclass(frozen=True, slots=True)
class RosterGroup:
    id: str
    school: str
    name: str
    grade: int | None = None


@dataclass(frozen=True, slots=True)
class RosterStaff:
    """A staff member; `schedule` None means the school default (Monday to Friday, 8 to 4)."""

    id: str
    name: str
    roles: tuple[StaffRole, ...]
    email: str | None = None
    locale: str = "fr"
    schedule: WeeklySchedule | None = None


@dataclass(frozen=True, slots=True)
class RosterStudent:
    id: str
    school: str
    name: str
    grade: int | None = None
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RosterParent:
    id: str
    name: str
    children: tuple[str, ...]
    email: str | None = None
    locale: str = "fr"


@dataclass(frozen=True, slots=True)
class Roster:
    schools: tuple[RosterSchool, ...] = ()
    groups: tuple[RosterGroup, ...] = ()
    staff: tuple[RosterStaff, ...] = ()
    students: tuple[RosterStudent, ...] = ()
    parents: tuple[RosterParent, ...] = ()


@dataclass(frozen=True)
class KnownIds:
    """Ids already in the database, which a document may reference without listing them."""

    schools: frozenset[str] = frozenset()
    groups: Mapping[str, str] = field(default_factory=dict)
    """group id -> school id"""
    students: Mapping[str, str] = field(default_factory=dict)
    """student id -> school id"""
    users: Mapping[str, UserKind] = field(default_factory=dict)
    """user id -> staff or parent; one id never changes kind"""


# --- structure ----------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _FeaturesIn(_In):
    bulk_send: bool = True
    parent_initiated: bool = True
    groups: bool = True
    attachments: bool = True
    notify_text: bool = False


class _SchoolIn(_In):
    id: str
    name: str
    service_centre: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    replace: bool = False
    features: _FeaturesIn = Field(default_factory=_FeaturesIn)
    closed_days: list[str] = Field(default_factory=list)


class _GroupIn(_In):
    id: str
    school: str
    name: str
    grade: int | None = None


class _RoleIn(_In):
    school: str
    role: str
    groups: list[str] = Field(default_factory=list)


class _StaffIn(_In):
    id: str
    name: str
    email: str | None = None
    locale: str = "fr"
    roles: list[_RoleIn]
    working_hours: Any = None


class _StudentIn(_In):
    id: str
    school: str
    name: str
    grade: int | None = None
    groups: list[str] = Field(default_factory=list)


class _ParentIn(_In):
    id: str
    name: str
    email: str | None = None
    locale: str = "fr"
    children: list[str]


_M = TypeVar("_M", bound=_In)
_R = TypeVar("_R")


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_problems(prefix: str, exc: ValidationError) -> Problems:
    messages = {"missing": "required field", "extra_forbidden": "unknown field"}
    return [
        (_path(prefix, tuple(e["loc"])), messages.get(e["type"], e["msg"])) for e in exc.errors()
    ]


# --- content checks -----------------------------------------------------------------------------

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _id_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID:
        return f"must be at most {MAX_ID} characters"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        return "must not contain control characters"
    if value != value.strip():
        return "must not start or end with spaces"
    return None


def _name_problem(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if len(value) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters"
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "must not contain control characters"
    return None


def _email_problem(value: str) -> str | None:
    local, _, domain = value.partition("@")
    if len(value) > MAX_EMAIL:
        return f"must be at most {MAX_EMAIL} characters"
    if value.count("@") != 1 or not local or not domain:
        return "is not an e-mail address"
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in value):
        return "must not contain spaces or control characters"
    return None


def _zone_problem(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ValueError, KeyError, OSError, UnicodeError):
        return f"unknown time zone {value!r}"
    return None


def _parse_date(value: str) -> date | None:
    if not _DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _strs(raw: Mapping[str, Any], key: str) -> list[tuple[int, str]]:
    """The string items of the list `raw[key]` with their index (type problems are pydantic's)."""
    value = raw.get(key)
    if not isinstance(value, list):
        return []
    return [(k, v) for k, v in enumerate(value) if isinstance(v, str)]


def _dicts(raw: Mapping[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
    value = raw.get(key)
    if not isinstance(value, list):
        return []
    return [(k, v) for k, v in enumerate(value) if isinstance(v, dict)]


def _declared(items: list[Any]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            out.setdefault(item["id"], _str(item, "school"))
    return out


class _Checker:
    """Walks the document once and collects every problem.

    Pydantic checks each item's structure; the content checks then read the raw item, skipping
    values of the wrong type (already reported), so that one bad field never hides another.
    """

    def __init__(self, known: KnownIds) -> None:
        self.known = known
        self.problems: Problems = []
        self.seen: dict[tuple[str, str], str] = {}
        self.schools: set[str] = set(known.schools)
        # id -> school, or None when the document's item names no school
        self.groups: dict[str, str | None] = dict(known.groups)
        self.students: dict[str, str | None] = dict(known.students)

    def add(self, path: str, problem: str | None) -> None:
        if problem:
            self.problems.append((path, problem))

    # --- the document --------------------------------------------------------------------------

    def run(self, doc: object) -> Roster:
        if not isinstance(doc, dict):
            self.add("", "the roster must be a JSON object")
            return Roster()
        sections: dict[str, list[Any]] = {}
        for key, value in doc.items():
            if key not in SECTIONS:
                self.add(str(key), "unknown field; expected " + ", ".join(SECTIONS))
            elif not isinstance(value, list):
                self.add(key, "must be a list")
            else:
                sections[key] = value
        self.schools |= set(_declared(sections.get("schools", [])))
        self.groups.update(_declared(sections.get("groups", [])))
        self.students.update(_declared(sections.get("students", [])))
        return Roster(
            schools=self._each(sections, "schools", _SchoolIn, self._school, _school_record),
            groups=self._each(sections, "groups", _GroupIn, self._group, _group_record),
            staff=self._each(sections, "staff", _StaffIn, self._staff, _staff_record),
            students=self._each(sections, "students", _StudentIn, self._student, _student_record),
            parents=self._each(sections, "parents", _ParentIn, self._parent, _parent_record),
        )

    def _each(
        self,
        sections: dict[str, list[Any]],
        name: str,
        model: type[_M],
        check: Callable[[dict[str, Any], str], None],
        record: Callable[[_M], _R],
    ) -> tuple[_R, ...]:
        out: list[_R] = []
        for i, item in enumerate(sections.get(name, [])):
            path = f"{name}[{i}]"
            if not isinstance(item, dict):
                self.add(path, "must be an object")
                continue
            try:
                parsed = model.model_validate(item)
            except ValidationError as exc:
                self.problems.extend(_pydantic_problems(path, exc))
            else:
                out.append(record(parsed))
            check(item, path)
        return tuple(out)

    # --- shared checks -------------------------------------------------------------------------

    def _common(self, section: str, raw: dict[str, Any], path: str) -> None:
        if (id_ := _str(raw, "id")) is not None:
            self.add(f"{path}.id", _id_problem(id_))
            space = "users" if section in ("staff", "parents") else section
            first = self.seen.setdefault((space, id_), f"{path}.id")
            if first != f"{path}.id":
                self.add(f"{path}.id", f"duplicate id {id_!r} (first at {first})")
        if (name := _str(raw, "name")) is not None:
            self.add(f"{path}.name", _name_problem(name))

    def _person(self, kind: UserKind, raw: dict[str, Any], path: str) -> None:
        if (email := _str(raw, "email")) is not None:
            self.add(f"{path}.email", _email_problem(email))
        if (locale := _str(raw, "locale")) is not None and locale not in LOCALES:
            self.add(f"{path}.locale", f"must be one of {', '.join(LOCALES)}")
        id_ = _str(raw, "id")
        was = self.known.users.get(id_) if id_ is not None else None
        if was is not None and was != kind:
            what = "staff member" if was is UserKind.STAFF else "parent"
            self.add(f"{path}.id", f"{id_!r} is already a {what}; {_ONE_KIND}")

    def _grade(self, raw: dict[str, Any], path: str) -> None:
        grade = raw.get("grade")
        if isinstance(grade, int) and not isinstance(grade, bool) and grade not in GRADES:
            self.add(f"{path}.grade", f"must be between {GRADES.start} and {GRADES.stop - 1}")

    def _school_ref(self, raw: dict[str, Any], path: str) -> str | None:
        """The school `raw` names, if it is known; else None (reported when it is a string)."""
        school = _str(raw, "school")
        if school is None or school in self.schools:
            return school
        self.add(f"{path}.school", f"unknown school {school!r}")
        return None

    def _group_refs(self, raw: dict[str, Any], path: str, school: str | None) -> None:
        items = _strs(raw, "groups")
        for k, group in items:
            where = f"{path}.groups[{k}]"
            if any(g == group for j, g in items if j < k):
                self.add(where, f"group {group!r} is listed twice")
            elif group not in self.groups:
                self.add(where, f"unknown group {group!r}")
            elif school and (owner := self.groups[group]) and owner != school:
                self.add(where, f"group {group!r} belongs to school {owner!r}, not {school!r}")

    # --- one item of each section --------------------------------------------------------------

    def _school(self, raw: dict[str, Any], path: str) -> None:
        self._common("schools", raw, path)
        if (centre := _str(raw, "service_centre")) is not None:
            self.add(f"{path}.service_centre", _name_problem(centre))
        if (zone := _str(raw, "timezone")) is not None:
            self.add(f"{path}.timezone", _zone_problem(zone))
        for k, text in _strs(raw, "closed_days"):
            if _parse_date(text) is None:
                self.add(f"{path}.closed_days[{k}]", f"{text!r} is not a date YYYY-MM-DD")

    def _group(self, raw: dict[str, Any], path: str) -> None:
        self._common("groups", raw, path)
        school, id_ = self._school_ref(raw, path), _str(raw, "id")
        was = self.known.groups.get(id_) if id_ is not None else None
        if school and was and was != school:
            self.add(f"{path}.school", f"group {id_!r} already belongs to school {was!r}")
        self._grade(raw, path)

    def _staff(self, raw: dict[str, Any], path: str) -> None:
        self._common("staff", raw, path)
        self._person(UserKind.STAFF, raw, path)
        if raw.get("roles") == []:
            self.add(f"{path}.roles", "a staff member needs at least one role")
        pairs: list[tuple[object, object]] = []
        for k, role in _dicts(raw, "roles"):
            where = f"{path}.roles[{k}]"
            name = _str(role, "role")
            if name is not None and name not in _ROLES:
                self.add(
                    f"{where}.role", f"unknown role {name!r}; expected one of {', '.join(Role)}"
                )
            self._group_refs(role, where, self._school_ref(role, where))
            pair = (role.get("school"), role.get("role"))
            if pair in pairs:
                self.add(where, "this school and role are listed twice")
            pairs.append(pair)
        hours = raw.get("working_hours")
        if hours is not None:
            self.problems.extend(parse_schedule(hours, f"{path}.working_hours")[1])

    def _student(self, raw: dict[str, Any], path: str) -> None:
        self._common("students", raw, path)
        self._group_refs(raw, path, self._school_ref(raw, path))
        self._grade(raw, path)

    def _parent(self, raw: dict[str, Any], path: str) -> None:
        self._common("parents", raw, path)
        self._person(UserKind.PARENT, raw, path)
        if raw.get("children") == []:
            self.add(f"{path}.children", "a parent needs at least one child")
        items = _strs(raw, "children")
        for k, child in items:
            if any(c == child for j, c in items if j < k):
                self.add(f"{path}.children[{k}]", f"student {child!r} is listed twice")
            elif child not in self.students:
                self.add(f"{path}.children[{k}]", f"unknown student {child!r}")


# --- records ------------------------------------------------------------------------------------


def _school_record(s: _SchoolIn) -> RosterSchool:
    days = {d for d in map(_parse_date, s.closed_days) if d is not None}
    return RosterSchool(
        id=s.id,
        name=s.name.strip(),
        timezone=s.timezone,
        features=Features(**s.features.model_dump()),
        closed_days=tuple(sorted(days)),
        replace=s.replace,
        service_centre=s.service_centre.strip() if s.service_centre is not None else None,
    )


def _group_record(g: _GroupIn) -> RosterGroup:
    return RosterGroup(id=g.id, school=g.school, name=g.name.strip(), grade=g.grade)


def _staff_record(s: _StaffIn) -> RosterStaff:
    roles = tuple(
        StaffRole(r.school, Role(r.role), frozenset(r.groups)) for r in s.roles if r.role in _ROLES
    )
    schedule = None if s.working_hours is None else parse_schedule(s.working_hours, "")[0]
    return RosterStaff(
        id=s.id,
        name=s.name.strip(),
        roles=roles,
        email=s.email,
        locale=s.locale,
        schedule=schedule,
    )


def _student_record(s: _StudentIn) -> RosterStudent:
    return RosterStudent(
        id=s.id, school=s.school, name=s.name.strip(), grade=s.grade, groups=tuple(s.groups)
    )


def _parent_record(p: _ParentIn) -> RosterParent:
    return RosterParent(
        id=p.id, name=p.name.strip(), children=tuple(p.children), email=p.email, locale=p.locale
    )


def validate_roster(doc: object, known: KnownIds) -> Roster:
    """The roster in `doc` (decoded JSON), or RosterInvalid listing every problem found."""
    checker = _Checker(known)
    roster = checker.run(doc)
    if checker.problems:
        raise RosterInvalid(checker.problems)
    return roster
