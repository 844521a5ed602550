"""Bulk sends ("envois collectifs"): who may send to which audience, and what a request must be.

    audience   exactly one of: the whole school, grades, class groups, chosen parents
    sender     office staff and the principal: any audience of their school; a teacher: only
               their own class groups; the school must have `bulk_send` on
    send_at    absent (now), or in the future and at most a year ahead
    body       1..10,000 characters, and body_en (for English-speaking parents) likewise

The facts (the school's groups and grades, the sender) come in as arguments; the recipients are
resolved by the store from the same audience.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from messaging.domain.authz import Denial
from messaging.domain.models import Person, Role, School
from messaging.errors import ErrorCode

MAX_BODY_CHARS = 10_000
MAX_AHEAD = timedelta(days=366)
MAX_LIST = 10_000


class Replies(StrEnum):
    PRIVATE = "private"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Audience:
    """One of the four kinds; the others are empty."""

    school: bool = False
    grades: frozenset[int] = frozenset()
    groups: frozenset[str] = frozenset()
    parents: frozenset[str] = frozenset()

    @property
    def kind(self) -> str:
        if self.school:
            return "school"
        if self.grades:
            return "grades"
        if self.groups:
            return "groups"
        return "parents"

    def to_json(self) -> dict[str, object]:
        if self.school:
            return {"school": True}
        if self.grades:
            return {"grades": sorted(self.grades)}
        if self.groups:
            return {"groups": sorted(self.groups)}
        return {"parents": sorted(self.parents)}


@dataclass(frozen=True, slots=True)
class BroadcastRequest:
    school: str
    audience: Audience
    body: str
    body_en: str | None
    attachments: tuple[str, ...]
    replies: Replies
    send_at: datetime | None


class RequestInvalid(ValueError):
    """A malformed request: `reason` is an i18n key, `field` the offending field."""

    def __init__(self, reason: str, field: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        super().__init__(f"{field}: {reason}")
        self.reason = reason
        self.field = field
        self.code = code


def _text(doc: Mapping[str, object], name: str, *, required: bool) -> str | None:
    value = doc.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RequestInvalid("field_missing" if value is None else "field_type", name)
    if len(value) > MAX_BODY_CHARS:
        raise RequestInvalid("body_too_long", name, ErrorCode.TOO_LARGE)
    if "\x00" in value:
        raise RequestInvalid("field_type", name)
    return value


def _ids(value: object, name: str) -> frozenset[str]:
    if not isinstance(value, list) or not value or len(value) > MAX_LIST:
        raise RequestInvalid("audience_empty" if value == [] else "field_type", name)
    if not all(isinstance(v, str) and 0 < len(v) <= 128 for v in value):
        raise RequestInvalid("field_type", name)
    return frozenset(value)


def parse_audience(value: object) -> Audience:
    """The audience map: exactly one kind, never empty."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise RequestInvalid("audience_one_kind", "audience")
    ((kind, items),) = value.items()
    if kind == "school":
        if items is not True:
            raise RequestInvalid("field_type", "audience.school")
        return Audience(school=True)
    if kind == "grades":
        if not isinstance(items, list) or not items:
            raise RequestInvalid("audience_empty", "audience.grades")
        if not all(type(g) is int and -1 <= g <= 12 for g in items):
            raise RequestInvalid("field_type", "audience.grades")
        return Audience(grades=frozenset(items))
    if kind == "groups":
        return Audience(groups=_ids(items, "audience.groups"))
    if kind == "parents":
        return Audience(parents=_ids(items, "audience.parents"))
    raise RequestInvalid("audience_one_kind", "audience")


def parse_request(doc: object, now: datetime) -> BroadcastRequest:
    """A POST /api/broadcasts body, checked field by field (raises RequestInvalid)."""
    if not isinstance(doc, Mapping):
        raise RequestInvalid("field_type", "body")
    school = doc.get("school")
    if not isinstance(school, str) or not school:
        raise RequestInvalid("field_missing", "school")
    body = _text(doc, "body", required=True)
    assert body is not None
    body_en = _text(doc, "body_en", required=False)
    attachments = doc.get("attachments", [])
    if not isinstance(attachments, list) or not all(isinstance(a, str) for a in attachments):
        raise RequestInvalid("field_type", "attachments")
    if len(attachments) > 10:
        raise RequestInvalid("too_many_attachments", "attachments", ErrorCode.TOO_LARGE)
    replies = doc.get("replies", Replies.PRIVATE.value)
    if replies not in (Replies.PRIVATE.value, Replies.NONE.value):
        raise RequestInvalid("field_type", "replies")
    return BroadcastRequest(
        school=school,
        audience=parse_audience(doc.get("audience")),
        body=body,
        body_en=body_en,
        attachments=tuple(dict.fromkeys(attachments)),
        replies=Replies(replies),
        send_at=_send_at(doc.get("send_at"), now),
    )


def _send_at(value: object, now: datetime) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestInvalid("field_type", "send_at")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise RequestInvalid("field_type", "send_at") from None
    if when.tzinfo is None:
        raise RequestInvalid("send_at_zone", "send_at")
    if when <= now:
        raise RequestInvalid("send_at_past", "send_at")
    if when > now + MAX_AHEAD:
        raise RequestInvalid("send_at_too_far", "send_at")
    return when


BULK_SEND_DISABLED = Denial(ErrorCode.FEATURE_DISABLED, "bulk_send_disabled")
NOT_A_SENDER = Denial(ErrorCode.FORBIDDEN, "broadcast_not_allowed")
TEACHER_OWN_GROUPS = Denial(ErrorCode.FORBIDDEN, "broadcast_own_groups_only")
UNKNOWN_GROUP = Denial(ErrorCode.INVALID, "broadcast_unknown_group")
UNKNOWN_GRADE = Denial(ErrorCode.INVALID, "broadcast_unknown_grade")

_ANY_AUDIENCE = frozenset({Role.OFFICE, Role.PRINCIPAL})


def may_broadcast(
    sender: Person,
    school: School,
    audience: Audience,
    school_groups: Mapping[str, int | None],
) -> Denial | None:
    """Whether `sender` may send to `audience` in `school`; `school_groups` maps the school's
    active class groups to their grade."""
    if not school.features.bulk_send:
        return BULK_SEND_DISABLED
    roles = sender.roles_in(school.id) if sender.active else ()
    if not roles:
        return NOT_A_SENDER
    if audience.groups and not audience.groups <= school_groups.keys():
        return UNKNOWN_GROUP
    if audience.grades and not audience.grades <= {g for g in school_groups.values()}:
        return UNKNOWN_GRADE
    if any(r.role in _ANY_AUDIENCE for r in roles):
        return None
    own = frozenset().union(*(r.groups for r in roles if r.role == Role.TEACHER))
    if not own:
        return NOT_A_SENDER
    if audience.groups and audience.groups <= own:
        return None
    return TEACHER_OWN_GROUPS


def may_view_broadcast(viewer: Person, school: str, sender: str) -> bool:
    """Its sender, and the school's office and principal (the school's history of sends)."""
    if viewer.id == sender:
        return True
    return any(r.role in _ANY_AUDIENCE for r in viewer.roles_in(school)) and viewer.active
