"""Who may do what (PROTOCOL.md section 6), as functions that return the reason for a refusal.

Every rule returns `None` when the action is allowed, else a `Denial` carrying the protocol error
code and an i18n reason key (`messaging.i18n`). The facts come in as arguments; nothing here looks
anything up.

    open       every participant belongs to the school; a direct conversation has exactly one
               other person and never two parents; a group needs the `groups` feature and a staff
               member of the school; the creator may contact each other participant
    contact    staff <-> staff of the school; teacher/support -> parents of students in their
               groups; office/daycare/principal -> any parent of the school; parent -> staff when
               the school allows parent-initiated conversations; parent -> parent never
    add        groups only, by a current member who is staff of the school, of people they
               may contact
    post       current members; not while locked; a broadcast is written by its sender only
    delete     one's own message, once, not while locked
    leave      groups only; the group locks itself when no staff member of the school remains
    read       current members only; someone who left keeps no access
    oversee    the school's principal (lock, unlock, moderate, audit)

A conversation the actor is not a current member of answers NOT_FOUND, so that its existence is
not disclosed (PROTOCOL.md section 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from messaging.domain.models import ConvFacts, ConvKind, Person, Role, School, TargetFacts
from messaging.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class Denial:
    """Why an action is refused: the protocol code and an i18n reason key."""

    code: ErrorCode
    reason: str


# Roles that may write to any parent of the school; teacher and support only to the parents of
# students in their groups.
_ANY_PARENT_ROLES = frozenset({Role.OFFICE, Role.DAYCARE, Role.PRINCIPAL})
_GROUP_ROLES = frozenset({Role.TEACHER, Role.SUPPORT})

ACCOUNT_INACTIVE = Denial(ErrorCode.FORBIDDEN, "account_inactive")
USER_INACTIVE = Denial(ErrorCode.FORBIDDEN, "user_inactive")
NOT_IN_SCHOOL = Denial(ErrorCode.FORBIDDEN, "not_in_school")
MEMBER_NOT_IN_SCHOOL = Denial(ErrorCode.FORBIDDEN, "member_not_in_school")
NOT_YOUR_STUDENTS_PARENT = Denial(ErrorCode.FORBIDDEN, "not_your_students_parent")
PARENT_INITIATED_DISABLED = Denial(ErrorCode.FEATURE_DISABLED, "parent_initiated_disabled")
PARENTS_NEED_STAFF = Denial(ErrorCode.NO_STAFF, "parents_need_staff")
GROUP_NEEDS_STAFF = Denial(ErrorCode.NO_STAFF, "no_staff")
GROUPS_DISABLED = Denial(ErrorCode.FEATURE_DISABLED, "groups_disabled")
DIRECT_NEEDS_ONE = Denial(ErrorCode.INVALID, "direct_needs_one")
CANNOT_INCLUDE_SELF = Denial(ErrorCode.INVALID, "cannot_include_self")
DUPLICATE_MEMBER = Denial(ErrorCode.INVALID, "duplicate_member")
ADD_ONLY_GROUPS = Denial(ErrorCode.FORBIDDEN, "add_only_groups")
STAFF_ONLY_ADD = Denial(ErrorCode.FORBIDDEN, "staff_only_add")
LEAVE_ONLY_GROUPS = Denial(ErrorCode.FORBIDDEN, "leave_only_groups")
BROADCAST_SENDER_ONLY = Denial(ErrorCode.FORBIDDEN, "broadcast_sender_only")
PRINCIPAL_ONLY = Denial(ErrorCode.FORBIDDEN, "principal_only")
NOT_FOUND = Denial(ErrorCode.NOT_FOUND, "not_found")
LOCKED = Denial(ErrorCode.LOCKED, "locked")
NOT_A_MESSAGE = Denial(ErrorCode.INVALID, "not_a_message")
NOT_YOUR_MESSAGE = Denial(ErrorCode.FORBIDDEN, "not_your_message")
ALREADY_DELETED = Denial(ErrorCode.CONFLICT, "already_deleted")


def may_contact(actor: Person, other: Person, school: School) -> Denial | None:
    """Whether `actor` may start a conversation with `other` in `school`."""
    if not actor.active:
        return ACCOUNT_INACTIVE
    if not other.active:
        return USER_INACTIVE
    if not actor.belongs_to(school.id):
        return NOT_IN_SCHOOL
    if not other.belongs_to(school.id):
        return MEMBER_NOT_IN_SCHOOL
    if actor.is_staff_of(school.id):
        if other.is_staff_of(school.id):
            return None
        return _staff_to_parent(actor, other, school.id)
    if other.is_staff_of(school.id):
        return None if school.features.parent_initiated else PARENT_INITIATED_DISABLED
    return PARENTS_NEED_STAFF


def _staff_to_parent(staff: Person, parent: Person, school: str) -> Denial | None:
    roles = staff.roles_in(school)
    if any(r.role in _ANY_PARENT_ROLES for r in roles):
        return None
    taught = frozenset[str]().union(*(r.groups for r in roles if r.role in _GROUP_ROLES))
    if any(child.groups & taught for child in parent.children_in(school)):
        return None
    return NOT_YOUR_STUDENTS_PARENT


def may_open(
    creator: Person, others: Sequence[Person], school: School, *, group: bool
) -> Denial | None:
    """Whether `creator` may open a direct (one other) or group conversation with `others`."""
    if not creator.active:
        return ACCOUNT_INACTIVE
    if not creator.belongs_to(school.id):
        return NOT_IN_SCHOOL
    ids = [p.id for p in others]
    if creator.id in ids:
        return CANNOT_INCLUDE_SELF
    if len(set(ids)) != len(ids):
        return DUPLICATE_MEMBER
    if not group and len(others) != 1:
        return DIRECT_NEEDS_ONE
    for other in others:
        if not other.active:
            return USER_INACTIVE
        if not other.belongs_to(school.id):
            return MEMBER_NOT_IN_SCHOOL
    if group:
        if not school.features.groups:
            return GROUPS_DISABLED
        if not any(p.is_staff_of(school.id) for p in (creator, *others)):
            return GROUP_NEEDS_STAFF
    elif not creator.is_staff_of(school.id) and not others[0].is_staff_of(school.id):
        return PARENTS_NEED_STAFF
    for other in others:
        if denial := may_contact(creator, other, school):
            return denial
    return None


def may_add(actor: Person, conv: ConvFacts, new: Sequence[Person], school: School) -> Denial | None:
    """Whether `actor` may add `new` to the group `conv`.

    People already in it are ignored and an empty `new` is allowed, so that adding is idempotent.
    """
    if actor.id not in conv.members:
        return NOT_FOUND
    if conv.kind is not ConvKind.GROUP:
        return ADD_ONLY_GROUPS
    if not actor.active:
        return ACCOUNT_INACTIVE
    if not actor.is_staff_of(school.id):
        return STAFF_ONLY_ADD
    if conv.locked:
        return LOCKED
    if not school.features.groups:
        return GROUPS_DISABLED
    ids = [p.id for p in new]
    if len(set(ids)) != len(ids):
        return DUPLICATE_MEMBER
    for person in (p for p in new if p.id not in conv.members):
        if not person.active:
            return USER_INACTIVE
        if not person.belongs_to(school.id):
            return MEMBER_NOT_IN_SCHOOL
        if denial := may_contact(actor, person, school):
            return denial
    return None


def may_post(conv: ConvFacts, actor_id: str) -> Denial | None:
    """Whether `actor_id` may append a message to `conv`."""
    if actor_id not in conv.members:
        return NOT_FOUND
    if conv.locked:
        return LOCKED
    if conv.kind is ConvKind.BROADCAST and conv.owner != actor_id:
        return BROADCAST_SENDER_ONLY
    return None


def may_delete(conv: ConvFacts, actor_id: str, target: TargetFacts | None) -> Denial | None:
    """Whether `actor_id` may delete the event `target` of `conv` (None: no such seq)."""
    if actor_id not in conv.members:
        return NOT_FOUND
    if conv.locked:
        return LOCKED
    if target is None:
        return NOT_FOUND
    if target.kind != "message":
        return NOT_A_MESSAGE
    if target.actor != actor_id:
        return NOT_YOUR_MESSAGE
    if target.redacted:
        return ALREADY_DELETED
    return None


def may_leave(conv: ConvFacts, actor_id: str) -> Denial | None:
    """Whether `actor_id` may leave `conv`; allowed while locked, since leaving is not posting."""
    if actor_id not in conv.members:
        return NOT_FOUND
    if conv.kind is not ConvKind.GROUP:
        return LEAVE_ONLY_GROUPS
    return None


def locks_after_leave(
    conv: ConvFacts, leaving: str, members: Sequence[Person], school_id: str
) -> bool:
    """True when no active staff member of the school remains once `leaving` has left `conv`."""
    remaining = (p for p in members if p.id != leaving and p.id in conv.members)
    return not any(p.is_staff_of(school_id) for p in remaining)


def may_read(conv: ConvFacts, actor_id: str) -> Denial | None:
    """Whether `actor_id` may read `conv` (fetch, read markers, attachments): current members."""
    if actor_id not in conv.members:
        return NOT_FOUND
    return None


def may_oversee(actor: Person, school_id: str) -> Denial | None:
    """Whether `actor` may lock, unlock, moderate and audit the conversations of `school_id`."""
    if not actor.active:
        return ACCOUNT_INACTIVE
    if not actor.has_role(school_id, Role.PRINCIPAL):
        return PRINCIPAL_ONLY
    return None
