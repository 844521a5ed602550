"""Who may do what: every rule of messaging.domain.authz, as tables."""

from __future__ import annotations

from dataclasses import replace

import pytest

from messaging import i18n
from messaging.domain import authz
from messaging.domain.authz import Denial
from messaging.domain.models import (
    Child,
    ConvFacts,
    ConvKind,
    Features,
    Person,
    Role,
    School,
    StaffRole,
    TargetFacts,
    UserKind,
)
from messaging.errors import ErrorCode
from messaging.i18n import core, protocol, rules

A, B = "erables", "chenes"
SCHOOL_A = School(A, "École des Érables")
SCHOOL_B = School(B, "École des Chênes", features=Features(parent_initiated=False))


def staff(id_: str, *roles: tuple[str, Role, set[str]]) -> Person:
    return Person(
        id_,
        UserKind.STAFF,
        roles=tuple(StaffRole(school, role, frozenset(groups)) for school, role, groups in roles),
    )


def parent(id_: str, *children: tuple[str, str]) -> Person:
    kids = tuple(
        Child(f"{id_}-{i}", school, 3, frozenset({g})) for i, (school, g) in enumerate(children)
    )
    return Person(id_, UserKind.PARENT, children=kids)


# The cast: staff of A (the teacher and support staff teach group a-1), parents of A with a child
# in a-1 ("in group") or in a-2 ("elsewhere"), and a parent and a teacher of school B.
PEOPLE: dict[str, Person] = {
    "teacher": staff("teacher", (A, Role.TEACHER, {"a-1"})),
    "office": staff("office", (A, Role.OFFICE, set())),
    "principal": staff("principal", (A, Role.PRINCIPAL, set())),
    "daycare": staff("daycare", (A, Role.DAYCARE, set())),
    "support": staff("support", (A, Role.SUPPORT, {"a-1"})),
    "parent_in_group": parent("parent_in_group", (A, "a-1")),
    "parent_elsewhere": parent("parent_elsewhere", (A, "a-2")),
    "parent_b": parent("parent_b", (B, "b-1")),
    "teacher_b": staff("teacher_b", (B, Role.TEACHER, {"b-1"})),
}
NAMES = list(PEOPLE)

# Short names for the outcomes, so that each matrix reads as a table.
OUTCOMES: dict[str, Denial | None] = {
    "ok": None,
    "self": authz.CANNOT_INCLUDE_SELF,
    "gone": authz.NOT_IN_SCHOOL,  # the actor is not linked to the school
    "out": authz.MEMBER_NOT_IN_SCHOOL,  # the other person is not linked to the school
    "nys": authz.NOT_YOUR_STUDENTS_PARENT,
    "pns": authz.PARENTS_NEED_STAFF,
    "nost": authz.GROUP_NEEDS_STAFF,
    "pid": authz.PARENT_INITIATED_DISABLED,
}

# Rows: the actor; columns, in the order of PEOPLE: the other person.
#                 teacher office principal daycare support in_group elsewhere parent_b teacher_b
CONTACT_IN_A = {
    "teacher": "ok ok ok ok ok ok nys out out",
    "office": "ok ok ok ok ok ok ok out out",
    "principal": "ok ok ok ok ok ok ok out out",
    "daycare": "ok ok ok ok ok ok ok out out",
    "support": "ok ok ok ok ok ok nys out out",
    "parent_in_group": "ok ok ok ok ok pns pns out out",
    "parent_elsewhere": "ok ok ok ok ok pns pns out out",
    "parent_b": "gone gone gone gone gone gone gone gone gone",
    "teacher_b": "gone gone gone gone gone gone gone gone gone",
}
CONTACT_IN_B = {
    "teacher": "gone gone gone gone gone gone gone gone gone",
    "office": "gone gone gone gone gone gone gone gone gone",
    "principal": "gone gone gone gone gone gone gone gone gone",
    "daycare": "gone gone gone gone gone gone gone gone gone",
    "support": "gone gone gone gone gone gone gone gone gone",
    "parent_in_group": "gone gone gone gone gone gone gone gone gone",
    "parent_elsewhere": "gone gone gone gone gone gone gone gone gone",
    "parent_b": "out out out out out out out pns pid",
    "teacher_b": "out out out out out out out ok ok",
}
DIRECT_IN_A = {
    "teacher": "self ok ok ok ok ok nys out out",
    "office": "ok self ok ok ok ok ok out out",
    "principal": "ok ok self ok ok ok ok out out",
    "daycare": "ok ok ok self ok ok ok out out",
    "support": "ok ok ok ok self ok nys out out",
    "parent_in_group": "ok ok ok ok ok self pns out out",
    "parent_elsewhere": "ok ok ok ok ok pns self out out",
    "parent_b": "gone gone gone gone gone gone gone gone gone",
    "teacher_b": "gone gone gone gone gone gone gone gone gone",
}
GROUP_IN_A = {
    "teacher": "self ok ok ok ok ok nys out out",
    "office": "ok self ok ok ok ok ok out out",
    "principal": "ok ok self ok ok ok ok out out",
    "daycare": "ok ok ok self ok ok ok out out",
    "support": "ok ok ok ok self ok nys out out",
    "parent_in_group": "ok ok ok ok ok self nost out out",
    "parent_elsewhere": "ok ok ok ok ok nost self out out",
    "parent_b": "gone gone gone gone gone gone gone gone gone",
    "teacher_b": "gone gone gone gone gone gone gone gone gone",
}
DIRECT_IN_B = {
    **{name: "gone " * 8 + "gone" for name in NAMES[:7]},
    "parent_b": "out out out out out out out self pid",
    "teacher_b": "out out out out out out out ok self",
}
GROUP_IN_B = DIRECT_IN_B


def cells(matrix: dict[str, str], school: School) -> list[tuple[str, str, School, str]]:
    assert list(matrix) == NAMES
    return [
        (actor, other, school, outcome)
        for actor, row in matrix.items()
        for other, outcome in zip(NAMES, row.split(), strict=True)
    ]


@pytest.mark.parametrize(
    ("actor", "other", "school", "outcome"),
    cells(CONTACT_IN_A, SCHOOL_A) + cells(CONTACT_IN_B, SCHOOL_B),
)
def test_may_contact_follows_the_role_matrix(
    actor: str, other: str, school: School, outcome: str
) -> None:
    """Who may start a conversation with whom matches the table for each school."""
    assert authz.may_contact(PEOPLE[actor], PEOPLE[other], school) == OUTCOMES[outcome]


@pytest.mark.parametrize(
    ("actor", "other", "school", "outcome"),
    cells(DIRECT_IN_A, SCHOOL_A) + cells(DIRECT_IN_B, SCHOOL_B),
)
def test_may_open_direct_follows_the_role_matrix(
    actor: str, other: str, school: School, outcome: str
) -> None:
    """A direct conversation is allowed exactly where the table says, never between two parents."""
    denial = authz.may_open(PEOPLE[actor], [PEOPLE[other]], school, group=False)
    assert denial == OUTCOMES[outcome]


@pytest.mark.parametrize(
    ("actor", "other", "school", "outcome"),
    cells(GROUP_IN_A, SCHOOL_A) + cells(GROUP_IN_B, SCHOOL_B),
)
def test_may_open_group_of_two_follows_the_role_matrix(
    actor: str, other: str, school: School, outcome: str
) -> None:
    """A group of the creator and one other follows the table; two parents lack staff."""
    denial = authz.may_open(PEOPLE[actor], [PEOPLE[other]], school, group=True)
    assert denial == OUTCOMES[outcome]


NO_GROUPS = replace(SCHOOL_A, features=Features(groups=False))
NO_PARENT_START = replace(SCHOOL_A, features=Features(parent_initiated=False))
INACTIVE_PARENT = replace(PEOPLE["parent_in_group"], active=False)
INACTIVE_TEACHER = replace(PEOPLE["teacher"], active=False)
TEACHER_AND_OFFICE = staff("multi", (A, Role.TEACHER, {"a-1"}), (A, Role.OFFICE, set()))
TEACHER_HERE_PRINCIPAL_THERE = staff(
    "split", (A, Role.TEACHER, {"a-1"}), (B, Role.PRINCIPAL, set())
)
TEACHER_AND_SUPPORT = staff("two", (A, Role.TEACHER, {"a-1"}), (A, Role.SUPPORT, {"a-2"}))
TWO_CHILDREN = parent("two_children", (A, "a-2"), (B, "b-1"))


def p(*names: str) -> list[Person]:
    return [PEOPLE[n] for n in names]


@pytest.mark.parametrize(
    ("creator", "others", "school", "group", "expected"),
    [
        (PEOPLE["teacher"], p("parent_in_group", "office"), SCHOOL_A, True, None),
        (PEOPLE["teacher"], p("parent_in_group", "parent_elsewhere"), SCHOOL_A, True, "nys"),
        (PEOPLE["office"], p("parent_in_group", "parent_elsewhere"), SCHOOL_A, True, None),
        (PEOPLE["teacher"], [], SCHOOL_A, True, None),
        (PEOPLE["parent_in_group"], [], SCHOOL_A, True, "nost"),
        (PEOPLE["parent_in_group"], p("teacher", "office"), SCHOOL_A, True, None),
        (PEOPLE["parent_in_group"], p("teacher", "parent_elsewhere"), SCHOOL_A, True, "pns"),
        (PEOPLE["parent_in_group"], p("teacher"), NO_PARENT_START, True, "pid"),
        (PEOPLE["parent_in_group"], p("teacher"), NO_PARENT_START, False, "pid"),
        (PEOPLE["teacher"], p("parent_in_group"), NO_PARENT_START, False, None),
        (PEOPLE["teacher"], p("office"), NO_GROUPS, True, "groups_disabled"),
        (PEOPLE["teacher"], p("office"), NO_GROUPS, False, None),
        (PEOPLE["teacher"], [], SCHOOL_A, False, "direct_needs_one"),
        (PEOPLE["teacher"], p("office", "principal"), SCHOOL_A, False, "direct_needs_one"),
        (PEOPLE["teacher"], p("office", "office"), SCHOOL_A, True, "duplicate_member"),
        (PEOPLE["teacher"], p("office", "teacher"), SCHOOL_A, True, "self"),
        (PEOPLE["teacher"], [INACTIVE_PARENT], SCHOOL_A, False, "user_inactive"),
        (INACTIVE_TEACHER, p("parent_in_group"), SCHOOL_A, False, "account_inactive"),
        (PEOPLE["teacher"], p("office", "teacher_b"), SCHOOL_A, True, "out"),
        (TEACHER_AND_OFFICE, p("parent_elsewhere"), SCHOOL_A, False, None),
        (TEACHER_HERE_PRINCIPAL_THERE, p("parent_elsewhere"), SCHOOL_A, False, "nys"),
        (TEACHER_HERE_PRINCIPAL_THERE, p("parent_b"), SCHOOL_B, False, None),
        (TEACHER_AND_SUPPORT, p("parent_in_group", "parent_elsewhere"), SCHOOL_A, True, None),
        (TWO_CHILDREN, p("teacher_b"), SCHOOL_B, False, "pid"),
        (TWO_CHILDREN, p("office"), SCHOOL_A, False, None),
        (PEOPLE["teacher_b"], [TWO_CHILDREN], SCHOOL_B, False, None),
        (PEOPLE["teacher"], [TWO_CHILDREN], SCHOOL_A, False, "nys"),
        (PEOPLE["principal"], [TWO_CHILDREN], SCHOOL_A, False, None),
    ],
)
def test_may_open_applies_membership_features_and_staff_rules(
    creator: Person, others: list[Person], school: School, group: bool, expected: str | None
) -> None:
    """Opening checks the school link, size, features and staff presence, then each pair."""
    denial = authz.may_open(creator, others, school, group=group)
    assert denial == _by_reason(expected)


def _by_reason(reason: str | None) -> Denial | None:
    """The denial named by a short outcome name or by its reason key (None: allowed)."""
    if reason is None:
        return None
    if reason in OUTCOMES:
        return OUTCOMES[reason]
    found = [d for d in _all_denials() if d.reason == reason]
    assert len(found) == 1, reason
    return found[0]


def _all_denials() -> list[Denial]:
    return [v for v in vars(authz).values() if isinstance(v, Denial)]


def conv(
    kind: ConvKind = ConvKind.GROUP,
    members: tuple[str, ...] = ("teacher", "parent_in_group"),
    *,
    locked: bool = False,
    owner: str | None = None,
) -> ConvFacts:
    return ConvFacts("c-1", A, kind, locked, 7, owner, frozenset(members))


GROUP = conv()
LOCKED = conv(locked=True)
DIRECT = conv(ConvKind.DIRECT)
BROADCAST = conv(ConvKind.BROADCAST, ("office", "parent_in_group"), owner="office")


@pytest.mark.parametrize(
    ("actor", "facts", "new", "school", "expected"),
    [
        ("teacher", GROUP, p("office"), SCHOOL_A, None),
        ("teacher", GROUP, p("parent_in_group"), SCHOOL_A, None),
        ("teacher", GROUP, p("teacher", "office"), SCHOOL_A, None),
        ("teacher", GROUP, p("parent_elsewhere"), SCHOOL_A, "nys"),
        ("teacher", GROUP, p("parent_b"), SCHOOL_A, "out"),
        ("teacher", GROUP, p("teacher_b"), SCHOOL_A, "out"),
        ("teacher", GROUP, [replace(PEOPLE["office"], active=False)], SCHOOL_A, "user_inactive"),
        ("teacher", GROUP, p("office", "office"), SCHOOL_A, "duplicate_member"),
        ("teacher", GROUP, [], SCHOOL_A, None),
        ("teacher", LOCKED, p("office"), SCHOOL_A, "locked"),
        ("teacher", GROUP, p("office"), NO_GROUPS, "groups_disabled"),
        ("parent_in_group", GROUP, p("office"), SCHOOL_A, "staff_only_add"),
        ("office", GROUP, p("principal"), SCHOOL_A, "not_found"),
        ("principal", GROUP, p("office"), SCHOOL_A, "not_found"),
        ("teacher", DIRECT, p("office"), SCHOOL_A, "add_only_groups"),
        ("office", BROADCAST, p("parent_elsewhere"), SCHOOL_A, "add_only_groups"),
    ],
)
def test_may_add_lets_staff_members_add_people_they_may_contact(
    actor: str, facts: ConvFacts, new: list[Person], school: School, expected: str | None
) -> None:
    """Only a staff member of a group adds, only people they may contact, never to a locked one."""
    assert authz.may_add(PEOPLE[actor], facts, new, school) == _by_reason(expected)


def test_may_add_refuses_an_inactive_staff_member() -> None:
    """A deactivated staff member who is still listed as a member adds nobody."""
    assert authz.may_add(INACTIVE_TEACHER, GROUP, p("office"), SCHOOL_A) == authz.ACCOUNT_INACTIVE


@pytest.mark.parametrize(
    ("facts", "actor", "expected"),
    [
        (GROUP, "teacher", None),
        (GROUP, "parent_in_group", None),
        (GROUP, "office", "not_found"),
        (LOCKED, "teacher", "locked"),
        (LOCKED, "principal", "not_found"),
        (conv(locked=True, members=("principal", "parent_in_group")), "principal", "locked"),
        (DIRECT, "parent_in_group", None),
        (BROADCAST, "office", None),
        (BROADCAST, "parent_in_group", "broadcast_sender_only"),
        (BROADCAST, "teacher", "not_found"),
    ],
)
def test_may_post_requires_membership_an_unlocked_conversation_and_broadcast_ownership(
    facts: ConvFacts, actor: str, expected: str | None
) -> None:
    """Members post unless locked; a broadcast takes posts from its sender only."""
    assert authz.may_post(facts, actor) == _by_reason(expected)


MESSAGE = TargetFacts(5, "message", "teacher", False)


@pytest.mark.parametrize(
    ("facts", "actor", "target", "expected"),
    [
        (GROUP, "teacher", MESSAGE, None),
        (GROUP, "parent_in_group", MESSAGE, "not_your_message"),
        (GROUP, "office", MESSAGE, "not_found"),
        (LOCKED, "teacher", MESSAGE, "locked"),
        (GROUP, "teacher", None, "not_found"),
        (GROUP, "teacher", TargetFacts(1, "created", "teacher", False), "not_a_message"),
        (GROUP, "teacher", TargetFacts(6, "deleted", "teacher", False), "not_a_message"),
        (GROUP, "teacher", replace(MESSAGE, redacted=True), "already_deleted"),
        (BROADCAST, "office", TargetFacts(2, "message", "office", False), None),
    ],
)
def test_may_delete_lets_a_sender_delete_their_own_message_once(
    facts: ConvFacts, actor: str, target: TargetFacts | None, expected: str | None
) -> None:
    """Only the sender deletes, only a message, only once, and never while locked."""
    assert authz.may_delete(facts, actor, target) == _by_reason(expected)


def test_may_delete_denials_carry_the_protocol_codes() -> None:
    """Deleting someone else's message is forbidden and deleting twice is a conflict."""
    assert authz.NOT_YOUR_MESSAGE.code is ErrorCode.FORBIDDEN
    assert authz.ALREADY_DELETED.code is ErrorCode.CONFLICT
    assert authz.NOT_A_MESSAGE.code is ErrorCode.INVALID


@pytest.mark.parametrize(
    ("facts", "actor", "expected"),
    [
        (GROUP, "teacher", None),
        (GROUP, "parent_in_group", None),
        (LOCKED, "parent_in_group", None),
        (GROUP, "office", "not_found"),
        (DIRECT, "teacher", "leave_only_groups"),
        (BROADCAST, "parent_in_group", "leave_only_groups"),
        (BROADCAST, "teacher", "not_found"),
    ],
)
def test_may_leave_allows_members_to_leave_groups_only(
    facts: ConvFacts, actor: str, expected: str | None
) -> None:
    """Members leave groups, even locked ones, but never a direct conversation or a broadcast."""
    assert authz.may_leave(facts, actor) == _by_reason(expected)


@pytest.mark.parametrize(
    ("members", "leaving", "locks"),
    [
        (("teacher", "parent_in_group"), "teacher", True),
        (("teacher", "parent_in_group"), "parent_in_group", False),
        (("teacher", "office", "parent_in_group"), "teacher", False),
        (("teacher", "teacher_b", "parent_in_group"), "teacher", True),
        (("teacher", "parent_in_group", "parent_elsewhere"), "parent_elsewhere", False),
        (("teacher",), "teacher", True),
        (("teacher", "parent_in_group"), "nobody", False),
    ],
)
def test_locks_after_leave_when_no_staff_of_the_school_remains(
    members: tuple[str, ...], leaving: str, locks: bool
) -> None:
    """The group locks itself exactly when its last staff member of the school leaves."""
    facts = conv(members=members)
    assert authz.locks_after_leave(facts, leaving, p(*members), A) is locks


def test_locks_after_leave_ignores_inactive_staff_and_people_not_in_the_group() -> None:
    """A deactivated staff member or a person outside the member set does not keep a group open."""
    facts = conv(members=("teacher", "support", "parent_in_group"))
    members = [PEOPLE["teacher"], replace(PEOPLE["support"], active=False), PEOPLE["office"]]
    members.append(PEOPLE["parent_in_group"])
    assert authz.locks_after_leave(facts, "teacher", members, A) is True


@pytest.mark.parametrize(
    ("facts", "actor", "expected"),
    [
        (GROUP, "teacher", None),
        (LOCKED, "parent_in_group", None),
        (BROADCAST, "parent_in_group", None),
        (GROUP, "office", "not_found"),
        (GROUP, "principal", "not_found"),
        (conv(members=("parent_in_group",)), "teacher", "not_found"),
    ],
)
def test_may_read_is_for_current_members(
    facts: ConvFacts, actor: str, expected: str | None
) -> None:
    """Current members read, locked or not; non-members and people who left get not_found."""
    assert authz.may_read(facts, actor) == _by_reason(expected)


@pytest.mark.parametrize(
    ("actor", "school", "expected"),
    [
        (PEOPLE["principal"], A, None),
        (PEOPLE["principal"], B, "principal_only"),
        (replace(PEOPLE["principal"], active=False), A, "account_inactive"),
        (PEOPLE["office"], A, "principal_only"),
        (PEOPLE["teacher"], A, "principal_only"),
        (PEOPLE["parent_in_group"], A, "principal_only"),
        (TEACHER_HERE_PRINCIPAL_THERE, B, None),
        (TEACHER_HERE_PRINCIPAL_THERE, A, "principal_only"),
    ],
)
def test_may_oversee_is_for_the_principal_of_the_school(
    actor: Person, school: str, expected: str | None
) -> None:
    """Only an active principal of that very school locks, unlocks, moderates and audits."""
    assert authz.may_oversee(actor, school) == _by_reason(expected)


def test_every_reason_has_french_and_english_texts() -> None:
    """Each reason a rule can return is in the i18n catalog, with distinct French and English."""
    for denial in _all_denials():
        assert i18n.known(denial.reason), denial.reason
        fr, en = i18n.text(denial.reason, "fr"), i18n.text(denial.reason, "en")
        assert fr and en and fr != en, denial.reason


def test_rule_texts_do_not_shadow_other_catalogs() -> None:
    """The rules' catalog adds keys only; core and protocol texts keep their meaning."""
    assert not set(rules.TEXTS) & set(core.TEXTS)
    assert not set(rules.TEXTS) & set(protocol.TEXTS)


def test_every_rule_text_is_used_by_a_denial() -> None:
    """No text in the rules' catalog is dead: each is the reason of some denial."""
    assert set(rules.TEXTS) <= {d.reason for d in _all_denials()}


def test_denials_use_the_documented_codes() -> None:
    """The denials map to the protocol codes the brief prescribes."""
    assert authz.PARENTS_NEED_STAFF.code is ErrorCode.NO_STAFF
    assert authz.GROUP_NEEDS_STAFF.code is ErrorCode.NO_STAFF
    assert authz.PARENT_INITIATED_DISABLED.code is ErrorCode.FEATURE_DISABLED
    assert authz.GROUPS_DISABLED.code is ErrorCode.FEATURE_DISABLED
    assert authz.NOT_FOUND.code is ErrorCode.NOT_FOUND
    assert authz.LOCKED.code is ErrorCode.LOCKED
    assert authz.NOT_IN_SCHOOL.code is ErrorCode.FORBIDDEN
