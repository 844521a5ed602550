"""The roster import: admin only, refused whole with every problem, idempotent, `replace`
deactivates and disconnects, school features apply, and the `import-roster` command."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from messaging.devservices import LocalPostgres
from messaging.gateway.auth import mint_token
from tests.e2e.conftest import import_school
from tests.rosters import SchoolIds, make_school, roster_doc
from tests.servers import Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")

REPO_ROOT = Path(__file__).resolve().parents[2]

# Every roster table, read whole for one school's ids; xmin changes with any UPDATE, even one
# that writes the same values, so equal snapshots mean that nothing was rewritten.
SNAPSHOT_QUERIES = {
    "schools": "SELECT xmin::text AS xmin, * FROM schools WHERE id LIKE $1 ORDER BY id",
    "class_groups": "SELECT xmin::text AS xmin, * FROM class_groups WHERE id LIKE $1 ORDER BY id",
    "users": "SELECT xmin::text AS xmin, * FROM users WHERE id LIKE $1 ORDER BY id",
    "staff_roles": "SELECT xmin::text AS xmin, * FROM staff_roles WHERE user_id LIKE $1"
    " ORDER BY user_id, school, role",
    "students": "SELECT xmin::text AS xmin, * FROM students WHERE id LIKE $1 ORDER BY id",
    "parent_children": "SELECT xmin::text AS xmin, * FROM parent_children WHERE parent LIKE $1"
    " ORDER BY parent, student",
}


def superuser_dsn(pg: LocalPostgres) -> str:
    """The superuser's DSN, on the service's database rather than `postgres`."""
    database = pg.owner_dsn.rsplit("/", 1)[1]
    return pg.admin_dsn.rsplit("/", 1)[0] + "/" + database


async def _snapshot(pg: LocalPostgres, prefix: str) -> dict[str, list[dict[str, Any]]]:
    conn = await asyncpg.connect(superuser_dsn(pg))
    try:
        return {
            table: [dict(r) for r in await conn.fetch(query, prefix + "%")]
            for table, query in SNAPSHOT_QUERIES.items()
        }
    finally:
        await conn.close()


async def _post_roster(
    gw: Gateway, secret: str, doc: Any, subject: str = "admin"
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            f"{gw.url}/api/admin/roster",
            json=doc,
            headers={"Authorization": f"Bearer {mint_token(secret, subject)}"},
        )


async def _me_status(gw: Gateway, secret: str, user: str) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"{gw.url}/api/me", headers={"Authorization": f"Bearer {mint_token(secret, user)}"}
        )
    return response.status_code


def _invalid_doc() -> tuple[SchoolIds, dict[str, Any], set[str]]:
    """A document with a valid-looking new school and many problems, and their paths."""
    s = make_school()
    doc = copy.deepcopy(roster_doc(s))
    doc["groups"].append({"id": f"{s.prefix}-gx", "school": "no-such-school", "name": "X"})
    doc["staff"][0]["roles"][0]["role"] = "janitor"
    doc["staff"][1]["working_hours"] = {**doc["staff"][1]["working_hours"]}
    doc["staff"][1]["working_hours"]["mon"] = [["08:00", "24:30"]]
    doc["students"].append(dict(doc["students"][0]))
    doc["schools"][0]["timezone"] = "Mars/Olympus_Mons"
    doc["parents"][0]["locale"] = "de"
    doc["schools"][1]["closed_days"] = ["2026-02-30"]
    doc["staff"][2]["roles"][0]["groups"] = ["no-such-group"]
    paths = {
        "groups[2].school",
        "staff[0].roles[0].role",
        "staff[1].working_hours.mon[0]",
        "students[4].id",
        "schools[0].timezone",
        "parents[0].locale",
        "schools[1].closed_days[0]",
        "staff[2].roles[0].groups[0]",
    }
    return s, doc, paths


async def test_non_admin_token_is_refused_403(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A token whose subject is not an admin subject, a principal's included, gets 403."""
    fresh = make_school()
    for subject in (school.principal, school.office, "not-admin"):
        response = await _post_roster(gateways[0], secret, roster_doc(fresh), subject)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    assert await _me_status(gateways[0], secret, fresh.principal) == 403


async def test_invalid_document_lists_every_problem_and_applies_nothing(
    gateways: tuple[Gateway, Gateway], secret: str, pg: LocalPostgres
) -> None:
    """An invalid document gets 400 listing each problem with its path; nothing is applied."""
    s, doc, paths = _invalid_doc()
    response = await _post_roster(gateways[1], secret, doc)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert isinstance(error["message"], str) and error["message"]
    assert {e["path"] for e in error["errors"]} == paths, error["errors"]
    assert all(isinstance(e["message"], str) and e["message"] for e in error["errors"])
    assert len(error["errors"]) == len(paths)
    for user in (s.principal, s.parent_b, s.other_principal):
        assert await _me_status(gateways[0], secret, user) == 403
    assert all(rows == [] for rows in (await _snapshot(pg, s.prefix)).values())


async def test_malformed_documents_are_400(gateways: tuple[Gateway, Gateway], secret: str) -> None:
    """A body that is not JSON, not an object, or has unknown sections is refused with 400."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{gateways[0].url}/api/admin/roster",
            content=b"{not json",
            headers={"Authorization": f"Bearer {mint_token(secret, 'admin')}"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    for doc, path in (([], ""), ({"teachers": []}, "teachers"), ({"staff": {}}, "staff")):
        response = await _post_roster(gateways[0], secret, doc)
        assert response.status_code == 400, doc
        assert [e["path"] for e in response.json()["error"]["errors"]] == [path]


async def test_importing_the_same_roster_twice_changes_nothing(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, pg: LocalPostgres
) -> None:
    """A second import of the same document rewrites no row of any roster table."""
    before = await _snapshot(pg, school.prefix)
    assert len(before["users"]) == 10 and len(before["staff_roles"]) == 6
    again = await _post_roster(gateways[1], secret, roster_doc(school))
    assert again.status_code == 200, again.text
    assert again.json()["deactivated"] == []
    assert await _snapshot(pg, school.prefix) == before
    replaced = roster_doc(school)
    replaced["schools"] = [{**replaced["schools"][0], "replace": True}, replaced["schools"][1]]
    third = await _post_roster(gateways[0], secret, replaced)
    assert third.status_code == 200, third.text
    assert third.json()["deactivated"] == []
    assert await _snapshot(pg, school.prefix) == before


def _untidy_doc(s: SchoolIds) -> dict[str, Any]:
    """The school's document written carelessly but validly: defaults left out, spaces around
    names, days and groups out of order, repeated closed days."""
    doc = copy.deepcopy(roster_doc(s))
    school = doc["schools"][0]
    del school["features"], school["timezone"]
    school["name"] = "  École Fictive  "
    school["closed_days"] = ["2026-12-25", "2026-12-24", "2026-12-25"]
    del doc["staff"][0]["working_hours"]
    doc["staff"][2]["working_hours"] = {"tue": [["13:00", "16:00"], ["08:00", "11:30"]]}
    doc["staff"][3]["roles"][0]["groups"] = [s.group_b, s.group_a]
    doc["staff"][3]["name"] = "Paul Enseignant "
    doc["students"][0]["groups"] = [s.group_b, s.group_a]
    doc["parents"][0]["children"] = [f"{s.prefix}-el-en", f"{s.prefix}-el-a"]
    return doc


async def test_importing_an_untidy_roster_twice_changes_nothing(
    gateways: tuple[Gateway, Gateway], secret: str, pg: LocalPostgres
) -> None:
    """A document relying on defaults and normalisation is applied once; its second import
    rewrites no row."""
    s = make_school()
    doc = _untidy_doc(s)
    first = await _post_roster(gateways[0], secret, doc)
    assert first.status_code == 200, first.text
    before = await _snapshot(pg, s.prefix)
    assert len(before["users"]) == 10 and len(before["parent_children"]) == 5
    again = await _post_roster(gateways[1], secret, doc)
    assert again.status_code == 200, again.text
    assert await _snapshot(pg, s.prefix) == before


async def test_staff_id_cannot_become_a_parent_in_a_later_document(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, pg: LocalPostgres
) -> None:
    """A later document naming an existing staff member as a parent is refused with 400."""
    before = await _snapshot(pg, school.prefix)
    doc = {
        "parents": [
            {"id": school.office, "name": "Claude Parent", "children": [f"{school.prefix}-el-b"]}
        ]
    }
    response = await _post_roster(gateways[0], secret, doc)
    assert response.status_code == 400, response.text
    assert [e["path"] for e in response.json()["error"]["errors"]] == ["parents[0].id"]
    assert await _snapshot(pg, school.prefix) == before


async def test_replace_deactivates_removed_users_and_closes_their_sockets_4003(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, pg: LocalPostgres
) -> None:
    """With `replace`, a removed teacher and parent are deactivated, their sockets on both
    gateways close with 4003, their conversations' history stays readable by others, and a
    group left without staff locks itself."""
    s = school
    gw1, gw2 = gateways
    async with (
        connect(gw1, secret, s.teacher) as t1,
        connect(gw2, secret, s.teacher) as t2,
        connect(gw1, secret, s.parent) as p1,
        connect(gw2, secret, s.parent) as p2,
        connect(gw1, secret, s.office) as office,
        connect(gw2, secret, s.parent_en) as pen,
    ):
        with_parent = (
            await office.request({"t": "open", "school": s.school, "members": [s.parent]})
        )["conv"]
        await office.request({"t": "send", "conv": with_parent, "cid": "o1", "body": "Bonjour"})
        await p1.request({"t": "send", "conv": with_parent, "cid": "p1", "body": "Merci"})
        with_teacher = (
            await pen.request({"t": "open", "school": s.school, "members": [s.teacher]})
        )["conv"]
        await t2.request({"t": "send", "conv": with_teacher, "cid": "t1", "body": "Hello"})
        history = {
            with_parent: (await office.request({"t": "fetch", "conv": with_parent}))["events"],
            with_teacher: (await pen.request({"t": "fetch", "conv": with_teacher}))["events"],
        }
        assert [len(v) for v in history.values()] == [3, 2]
        group = await t1.request(
            {"t": "open", "school": s.school, "members": [s.parent, s.parent_en], "title": "3e A"}
        )
        assert group["t"] == "ok", group
        await pen.wait_for(lambda c: c.seqs(group["conv"]) == [1])

        doc = roster_doc(s)
        doc["schools"] = [{**doc["schools"][0], "replace": True}, doc["schools"][1]]
        doc["staff"] = [m for m in doc["staff"] if m["id"] != s.teacher]
        doc["parents"] = [p for p in doc["parents"] if p["id"] != s.parent]
        response = await _post_roster(gw2, secret, doc)
        assert response.status_code == 200, response.text
        assert sorted(response.json()["deactivated"]) == sorted([s.teacher, s.parent])

        for client in (t1, t2, p1, p2):
            await client.wait_for(lambda c: c.close_code is not None)
            assert client.close_code == 4003
        assert office.close_code is None and pen.close_code is None
        assert (await office.request({"t": "fetch", "conv": with_parent}))["events"] == history[
            with_parent
        ]
        assert (await pen.request({"t": "fetch", "conv": with_teacher}))["events"] == history[
            with_teacher
        ]
        # the group lost its only staff member: it locks itself, as when they leave
        await pen.wait_for(lambda c: c.seqs(group["conv"]) == [1, 2])
        locked = pen.events[-1]
        assert locked["kind"] == "locked" and locked["reason"] == "no_staff", locked
        refused = await pen.request({"t": "send", "conv": group["conv"], "cid": "x", "body": "?"})
        assert refused["t"] == "error" and refused["code"] == "locked", refused
        for members in ([s.parent], [s.parent, s.parent_en], [s.teacher]):
            refused = await office.request({"t": "open", "school": s.school, "members": members})
            assert refused["t"] == "error" and refused["code"] == "forbidden", refused
    for user in (s.teacher, s.parent):
        assert await _me_status(gw1, secret, user) == 403
    for user in (s.office, s.parent_en, s.teacher_b):
        assert await _me_status(gw1, secret, user) == 200
    conn = await asyncpg.connect(superuser_dsn(pg))
    try:
        rows = await conn.fetch(
            "SELECT id, active FROM users WHERE id LIKE $1 ORDER BY id", s.prefix + "%"
        )
        events = await conn.fetchval(
            "SELECT count(*) FROM events WHERE conv = ANY($1::text[])", list(history)
        )
    finally:
        await conn.close()
    inactive = sorted(r["id"] for r in rows if not r["active"])
    assert inactive == sorted([s.teacher, s.parent])
    assert events == 5


async def test_parent_initiated_off_refuses_parent_open(
    gateways: tuple[Gateway, Gateway], secret: str
) -> None:
    """Where parent-initiated conversations are off, a parent's `open` toward staff gets
    `feature_disabled`, while staff may still open toward the parent."""
    s = make_school(parent_initiated=False)
    import_school(gateways[0], secret, s)
    async with (
        connect(gateways[0], secret, s.parent) as parent,
        connect(gateways[1], secret, s.teacher) as teacher,
    ):
        for staff in (s.teacher, s.office, s.principal):
            refused = await parent.request({"t": "open", "school": s.school, "members": [staff]})
            assert refused["t"] == "error" and refused["code"] == "feature_disabled", refused
        opened = await teacher.request({"t": "open", "school": s.school, "members": [s.parent]})
        assert opened["t"] == "ok" and opened["created"] is True
        await parent.wait_for(lambda c: c.seqs(opened["conv"]) == [1])
        reply = await parent.request(
            {"t": "send", "conv": opened["conv"], "cid": "r", "body": "Réponse"}
        )
        assert reply["t"] == "ok", reply


async def test_groups_off_refuses_groups(gateways: tuple[Gateway, Gateway], secret: str) -> None:
    """Where groups are off, opening a group gets `feature_disabled`; a direct one still works."""
    s = make_school(groups=False)
    import_school(gateways[0], secret, s)
    async with connect(gateways[1], secret, s.teacher) as teacher:
        for frame in (
            {"members": [s.parent, s.parent_en], "title": "3e A"},
            {"members": [s.parent, s.office]},
            {"members": [s.office], "title": "Équipe"},
        ):
            refused = await teacher.request({"t": "open", "school": s.school, **frame})
            assert refused["t"] == "error" and refused["code"] == "feature_disabled", refused
        direct = await teacher.request({"t": "open", "school": s.school, "members": [s.parent]})
        assert direct["t"] == "ok", direct


async def _run_cli(service_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "messaging", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **service_env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_import_roster_command(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    service_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """`messaging import-roster` exits 1 listing every problem of an invalid file, applying
    nothing, and exits 0 for a valid one, which is then in force."""
    s, bad, paths = _invalid_doc()
    bad_file = tmp_path / "invalid.json"
    bad_file.write_text(json.dumps(bad), encoding="utf-8")
    refused = await _run_cli(service_env, "import-roster", str(bad_file))
    assert refused.returncode == 1, refused.stderr
    for path in paths:
        assert f"  {path}: " in refused.stderr, path
    assert await _me_status(gateways[0], secret, s.principal) == 403

    good = make_school()
    good_file = tmp_path / "valid.json"
    good_file.write_text(json.dumps(roster_doc(good)), encoding="utf-8")
    imported = await _run_cli(service_env, "import-roster", str(good_file))
    assert imported.returncode == 0, imported.stderr
    assert await _me_status(gateways[0], secret, good.principal) == 200
    async with connect(gateways[1], secret, good.parent) as parent:
        opened = await parent.request(
            {"t": "open", "school": good.school, "members": [good.teacher]}
        )
        assert opened["t"] == "ok", opened
