"""The facts the rules look at, loaded from the roster by the store and passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class UserKind(StrEnum):
    PARENT = "parent"
    STAFF = "staff"


class Role(StrEnum):
    TEACHER = "teacher"
    OFFICE = "office"
    PRINCIPAL = "principal"
    DAYCARE = "daycare"
    SUPPORT = "support"


class ConvKind(StrEnum):
    DIRECT = "direct"
    GROUP = "group"
    BROADCAST = "broadcast"


@dataclass(frozen=True, slots=True)
class StaffRole:
    """One role of a staff member in one school; `groups` are the class groups they teach."""

    school: str
    role: Role
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Child:
    """A student as seen through a parent: where they are enrolled."""

    id: str
    school: str
    grade: int | None = None
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Person:
    """A roster user: staff with roles, or a parent with children."""

    id: str
    kind: UserKind
    name: str = ""
    locale: str = "fr"
    active: bool = True
    roles: tuple[StaffRole, ...] = ()
    children: tuple[Child, ...] = ()

    def roles_in(self, school: str) -> tuple[StaffRole, ...]:
        return tuple(r for r in self.roles if r.school == school)

    def is_staff_of(self, school: str) -> bool:
        return self.active and any(r.school == school for r in self.roles)

    def has_role(self, school: str, role: Role) -> bool:
        return self.active and any(r.school == school and r.role == role for r in self.roles)

    def children_in(self, school: str) -> tuple[Child, ...]:
        return tuple(c for c in self.children if c.school == school)

    def belongs_to(self, school: str) -> bool:
        """Staff with a role there, or a parent with a child enrolled there."""
        if not self.active:
            return False
        if self.kind is UserKind.STAFF:
            return self.is_staff_of(school)
        return bool(self.children_in(school))


@dataclass(frozen=True, slots=True)
class Features:
    """Per-school switches; messaging itself is always on."""

    bulk_send: bool = True
    parent_initiated: bool = True
    groups: bool = True
    attachments: bool = True
    # message text in notification e-mails and pushes; off by default (minors' records)
    notify_text: bool = False


@dataclass(frozen=True, slots=True)
class School:
    id: str
    name: str = ""
    timezone: str = "America/Toronto"
    features: Features = field(default_factory=Features)


@dataclass(frozen=True, slots=True)
class ConvFacts:
    """What the rules need to know about a conversation; `members` are its current members."""

    id: str
    school: str
    kind: ConvKind
    locked: bool
    last_seq: int
    owner: str | None
    members: frozenset[str]


@dataclass(frozen=True, slots=True)
class TargetFacts:
    """The event a request points at (by seq): its kind, who appended it, whether it is hidden."""

    seq: int
    kind: str
    actor: str
    redacted: bool
