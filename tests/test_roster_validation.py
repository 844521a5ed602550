"""The roster document: the demo passes, and a bad document is refused with every problem listed."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

import messaging
from messaging.domain.hours import WeeklySchedule
from messaging.domain.models import Features, Role, StaffRole, UserKind
from messaging.domain.roster import KnownIds, validate_roster
from messaging.errors import ErrorCode, RosterInvalid

DEMO = Path(messaging.__file__).parent / "demo_roster.json"


def test_demo_roster_passes() -> None:
    """The demo roster shipped for `make run` is valid and reads back as plain records."""
    roster = validate_roster(json.loads(DEMO.read_text(encoding="utf-8")), KnownIds())
    erables, chenes = roster.schools
    assert (erables.id, erables.name, erables.timezone) == (
        "erables",
        "École des Érables",
        "America/Toronto",
    )
    assert erables.features == Features()
    assert chenes.features == Features(parent_initiated=False)
    assert date(2026, 12, 25) in erables.closed_days
    assert list(erables.closed_days) == sorted(erables.closed_days)
    staff = {s.id: s for s in roster.staff}
    assert staff["dir-1"].roles == (StaffRole("erables", Role.PRINCIPAL),)
    assert staff["ens-3"].roles[0].groups == frozenset({"erables-5a", "erables-6a"})
    assert staff["ens-3"].locale == "en"
    assert isinstance(staff["ens-1"].schedule, WeeklySchedule)
    assert staff["ens-4"].schedule is None
    parents = {p.id: p for p in roster.parents}
    assert parents["par-1"].children == ("el-1", "el-13")
    assert len(roster.groups) == 5
    assert len(roster.students) == 14


KNOWN = KnownIds(
    schools=frozenset({"old"}),
    groups={"old-1": "old", "old-2": "old"},
    students={"s-old": "old"},
    users={"was-parent": UserKind.PARENT, "was-staff": UserKind.STAFF},
)

LONG_ID = "x" * 129
BAD_DOCUMENT = {
    "schools": [
        {
            "id": "",
            "name": "École",
            "timezone": "Mars/Olympus",
            "features": {"groups": "yes", "chat": True},
            "closed_days": ["2026-02-30", "2026-1-5", 20261224, "2026-12-24"],
            "colour": "red",
        },
        {"id": "a", "name": "A", "replace": "true"},
        {"id": "a", "name": "A again", "service_centre": "x" * 201},
    ],
    "groups": [
        {"id": "a-1", "school": "a", "name": "1re A", "grade": 1},
        {"id": "a-2", "school": "nowhere", "name": "2e A", "grade": 13},
        {"id": "old-1", "school": "a", "name": "moved", "grade": True},
        {"id": "a-1", "school": "old", "name": "  "},
    ],
    "staff": [
        {
            "id": "t-1",
            "name": "Marie",
            "email": "marie@@example.org",
            "locale": "de",
            "roles": [
                {"school": "a", "role": "janitor", "groups": ["a-1", "old-2", "nope", "a-1"]},
                {"school": "old", "role": "teacher", "groups": ["old-2"]},
                {"school": "old", "role": "teacher"},
                {"school": "gone", "role": "office", "boss": True},
            ],
            "working_hours": {
                "mon": [["07:30", "24:30"]],
                "tue": [["08:00", "12:00"], ["11:00", "13:00"]],
                "funday": [],
            },
        },
        "not an object",
        {"id": "t-1", "name": "Twin", "roles": []},
        {"id": LONG_ID, "name": "N" * 201, "roles": [{"school": "a", "role": "office"}]},
        {"id": "t\x07", "roles": [{"school": "a", "role": "office"}], "working_hours": "9-5"},
        {"id": "was-parent", "name": "Kind change", "roles": [{"school": "a", "role": "office"}]},
    ],
    "students": [
        {"id": "s-1", "school": "a", "name": "Léa", "groups": ["a-1", "a-1", "old-2"]},
        {"id": "s-2", "school": "old", "name": "Noé", "groups": ["old-2"]},
        {"id": "s-3", "school": "nowhere", "name": "Zoé", "groups": ["a-1"]},
        {"id": "s-4", "school": "a", "name": "Éli", "groups": "a-1"},
    ],
    "parents": [
        {"id": "p-1", "name": "Sam", "email": "sam.example.org", "children": ["s-1", "s-old"]},
        {"id": "p-2", "name": "Alex", "locale": "EN", "children": []},
        {"id": "p-3", "name": "Kim", "children": ["s-9", "s-1", "s-1"]},
        {"id": "t-1", "name": "Same id as staff", "children": ["s-2"]},
        {"id": "was-staff", "name": "Kind change", "email": "a@" + "b" * 253, "children": ["s-2"]},
        {"id": "p-6", "name": "Space", "email": "sam roy@example.org", "children": ["s-4"]},
    ],
    "teachers": [],
}

EXPECTED_PROBLEMS = [
    ("teachers", "unknown field; expected schools, groups, staff, students, parents"),
    ("schools[0].features.groups", "Input should be a valid boolean"),
    ("schools[0].features.chat", "unknown field"),
    ("schools[0].closed_days[2]", "Input should be a valid string"),
    ("schools[0].colour", "unknown field"),
    ("schools[0].id", "must not be empty"),
    ("schools[0].timezone", "unknown time zone 'Mars/Olympus'"),
    ("schools[0].closed_days[0]", "'2026-02-30' is not a date YYYY-MM-DD"),
    ("schools[0].closed_days[1]", "'2026-1-5' is not a date YYYY-MM-DD"),
    ("schools[1].replace", "Input should be a valid boolean"),
    ("schools[2].id", "duplicate id 'a' (first at schools[1].id)"),
    ("schools[2].service_centre", "must be at most 200 characters"),
    ("groups[1].school", "unknown school 'nowhere'"),
    ("groups[1].grade", "must be between -1 and 12"),
    ("groups[2].grade", "Input should be a valid integer"),
    ("groups[2].school", "group 'old-1' already belongs to school 'old'"),
    ("groups[3].id", "duplicate id 'a-1' (first at groups[0].id)"),
    ("groups[3].name", "must not be empty"),
    ("staff[0].roles[3].boss", "unknown field"),
    ("staff[0].email", "is not an e-mail address"),
    ("staff[0].locale", "must be one of fr, en"),
    (
        "staff[0].roles[0].role",
        "unknown role 'janitor'; expected one of teacher, office, principal, daycare, support",
    ),
    ("staff[0].roles[0].groups[1]", "group 'old-2' belongs to school 'old', not 'a'"),
    ("staff[0].roles[0].groups[2]", "unknown group 'nope'"),
    ("staff[0].roles[0].groups[3]", "group 'a-1' is listed twice"),
    ("staff[0].roles[2]", "this school and role are listed twice"),
    ("staff[0].roles[3].school", "unknown school 'gone'"),
    ("staff[0].working_hours.mon[0]", "end '24:30' is not a time HH:MM from 00:00 to 24:00"),
    ("staff[0].working_hours.tue[1]", "overlaps staff[0].working_hours.tue[0]"),
    (
        "staff[0].working_hours.funday",
        "unknown day; expected one of mon, tue, wed, thu, fri, sat, sun",
    ),
    ("staff[1]", "must be an object"),
    ("staff[2].id", "duplicate id 't-1' (first at staff[0].id)"),
    ("staff[2].roles", "a staff member needs at least one role"),
    ("staff[3].id", "must be at most 128 characters"),
    ("staff[3].name", "must be at most 200 characters"),
    ("staff[4].name", "required field"),
    ("staff[4].id", "must not contain control characters"),
    ("staff[4].working_hours", "must be an object with days mon..sun"),
    ("staff[5].id", "'was-parent' is already a parent; one id is never both staff and parent"),
    ("students[0].groups[1]", "group 'a-1' is listed twice"),
    ("students[0].groups[2]", "group 'old-2' belongs to school 'old', not 'a'"),
    ("students[2].school", "unknown school 'nowhere'"),
    ("students[3].groups", "Input should be a valid list"),
    ("parents[0].email", "is not an e-mail address"),
    ("parents[1].locale", "must be one of fr, en"),
    ("parents[1].children", "a parent needs at least one child"),
    ("parents[2].children[0]", "unknown student 's-9'"),
    ("parents[2].children[2]", "student 's-1' is listed twice"),
    ("parents[3].id", "duplicate id 't-1' (first at staff[0].id)"),
    ("parents[4].email", "must be at most 254 characters"),
    (
        "parents[4].id",
        "'was-staff' is already a staff member; one id is never both staff and parent",
    ),
    ("parents[5].email", "must not contain spaces or control characters"),
]


def test_every_problem_is_listed_with_its_path() -> None:
    """A document with many problems is refused whole, each problem at its exact path, in order."""
    with pytest.raises(RosterInvalid) as caught:
        validate_roster(BAD_DOCUMENT, KNOWN)
    assert caught.value.problems == EXPECTED_PROBLEMS
    assert caught.value.code is ErrorCode.INVALID
    assert caught.value.params == {"count": len(EXPECTED_PROBLEMS)}
