"""Fictional rosters for tests: every call makes a fresh school whose ids share a prefix."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

HOURS = {
    "mon": [["00:00", "24:00"]],
    "tue": [["00:00", "24:00"]],
    "wed": [["00:00", "24:00"]],
    "thu": [["00:00", "24:00"]],
    "fri": [["00:00", "24:00"]],
    "sat": [],
    "sun": [],
}


@dataclass(frozen=True)
class SchoolIds:
    __test__ = False
    """Ids of a generated school: `school`, `principal`, `office`, `teacher` (group A),
    `teacher_b` (group B), `parent` (child in A), `parent_b` (child in B), `parent_en` (child in
    A, English), `other_school`, `other_principal`, `other_parent`."""

    prefix: str
    doc: dict[str, Any]

    def __getattr__(self, name: str) -> str:
        ids = self.doc["_ids"]
        if name in ids:
            return str(ids[name])
        raise AttributeError(name)


def make_school(*, parents_in_a: int = 0, **features: bool) -> SchoolIds:
    p = "t" + secrets.token_hex(4)
    school, other = f"{p}-sch", f"{p}-oth"
    ga, gb = f"{p}-ga", f"{p}-gb"
    ids = {
        "school": school,
        "other_school": other,
        "group_a": ga,
        "group_b": gb,
        "principal": f"{p}-dir",
        "office": f"{p}-bur",
        "teacher": f"{p}-ens-a",
        "teacher_b": f"{p}-ens-b",
        "daycare": f"{p}-sdg",
        "parent": f"{p}-par-a",
        "parent_b": f"{p}-par-b",
        "parent_en": f"{p}-par-en",
        "other_principal": f"{p}-dir-o",
        "other_parent": f"{p}-par-o",
    }
    feats = {"bulk_send": True, "parent_initiated": True, "groups": True, "attachments": True}
    feats.update(features)

    def staff(uid: str, name: str, sch: str, role: str, groups: list[str]) -> dict[str, Any]:
        return {
            "id": uid,
            "name": name,
            "email": f"{uid}@example.org",
            "locale": "fr",
            "roles": [{"school": sch, "role": role, "groups": groups}],
            "working_hours": HOURS,
        }

    students = [
        {"id": f"{p}-el-a", "school": school, "grade": 3, "groups": [ga], "name": "Léa Fictive"},
        {"id": f"{p}-el-b", "school": school, "grade": 5, "groups": [gb], "name": "Noé Fictif"},
        {"id": f"{p}-el-en", "school": school, "grade": 3, "groups": [ga], "name": "Ava Fictional"},
        {"id": f"{p}-el-o", "school": other, "grade": 2, "groups": [], "name": "Jade Fictive"},
    ]
    parents = [
        {
            "id": ids["parent"],
            "name": "Sam Fictif",
            "email": "sam@example.org",
            "locale": "fr",
            "children": [f"{p}-el-a"],
        },
        {
            "id": ids["parent_b"],
            "name": "Lou Fictive",
            "email": "lou@example.org",
            "locale": "fr",
            "children": [f"{p}-el-b"],
        },
        {
            "id": ids["parent_en"],
            "name": "Kim Fictional",
            "email": "kim@example.org",
            "locale": "en",
            "children": [f"{p}-el-en"],
        },
        {
            "id": ids["other_parent"],
            "name": "Max Fictif",
            "email": "max@example.org",
            "locale": "fr",
            "children": [f"{p}-el-o"],
        },
    ]
    for i in range(parents_in_a):
        students.append(
            {"id": f"{p}-el-x{i}", "school": school, "grade": 3, "groups": [ga], "name": f"É{i}"}
        )
        parents.append(
            {
                "id": f"{p}-par-x{i}",
                "name": f"Parent {i}",
                "email": f"x{i}@example.org",
                "locale": "fr",
                "children": [f"{p}-el-x{i}"],
            }
        )
    doc = {
        "schools": [
            {
                "id": school,
                "name": "École Fictive",
                "service_centre": "css-test",
                "timezone": "America/Toronto",
                "features": feats,
                "closed_days": [],
            },
            {
                "id": other,
                "name": "École Autre",
                "service_centre": "css-test",
                "timezone": "America/Toronto",
                "features": feats,
                "closed_days": [],
            },
        ],
        "groups": [
            {"id": ga, "school": school, "name": "3e A", "grade": 3},
            {"id": gb, "school": school, "name": "5e B", "grade": 5},
        ],
        "staff": [
            staff(ids["principal"], "Dominique Directrice", school, "principal", []),
            staff(ids["office"], "Claude Secrétaire", school, "office", []),
            staff(ids["teacher"], "Marie Enseignante", school, "teacher", [ga]),
            staff(ids["teacher_b"], "Paul Enseignant", school, "teacher", [gb]),
            staff(ids["daycare"], "René Éducateur", school, "daycare", []),
            staff(ids["other_principal"], "Alex Directeur", other, "principal", []),
        ],
        "students": students,
        "parents": parents,
    }
    return SchoolIds(p, {**doc, "_ids": ids})


def roster_doc(school: SchoolIds) -> dict[str, Any]:
    return {k: v for k, v in school.doc.items() if not k.startswith("_")}
