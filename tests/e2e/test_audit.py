"""The audit API end to end (PROTOCOL.md section 7): search, full view, exports, and the trail
of audit reads, against real gateways, Postgres and Redis."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from pypdf import PdfReader

from messaging.devservices import APP_ROLE, LocalPostgres
from messaging.domain.chain import GENESIS, event_hash
from messaging.gateway.auth import mint_token
from tests.rosters import SchoolIds
from tests.servers import Client, Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")

LIST = "/api/audit/conversations"
READS = "/api/audit/reads"


async def _get(
    gw: Gateway,
    user: str | None,
    path: str,
    *,
    secret: str = "",
    token: str | None = None,
    **params: str,
) -> httpx.Response:
    headers = {}
    if token is not None or user is not None:
        headers["Authorization"] = f"Bearer {token or mint_token(secret, str(user))}"
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
        return await http.get(path, params=params, headers=headers)


def _convs(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["conv"] for c in response.json()["conversations"]]


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def _open(client: Client, school: str, members: list[str], **extra: Any) -> str:
    opened = await client.request({"t": "open", "school": school, "members": members, **extra})
    assert opened["t"] == "ok", opened
    return str(opened["conv"])


async def _say(client: Client, conv: str, body: str) -> int:
    cid = secrets.token_hex(8)
    sent = await client.request({"t": "send", "conv": conv, "cid": cid, "body": body})
    assert sent["t"] == "ok", sent
    return int(sent["seq"])


@dataclass
class Scene:
    """Three conversations of a fresh school: `meeting` (teacher and parent, French, with a
    deleted and a removed message), `english` (teacher and the English-speaking parent) and
    `outing` (a group of the office that the teacher left)."""

    meeting: str
    english: str
    outing: str


DELETED = "Message à supprimer : code 4321"
REMOVED = "Propos déplacés envers l'enseignante"


async def _scene(gateways: tuple[Gateway, Gateway], secret: str, s: SchoolIds) -> Scene:
    async with (
        connect(gateways[0], secret, s.teacher) as teacher,
        connect(gateways[1], secret, s.parent) as parent,
        connect(gateways[1], secret, s.parent_en) as parent_en,
        connect(gateways[0], secret, s.office) as office,
        connect(gateways[1], secret, s.principal) as principal,
    ):
        meeting = await _open(teacher, s.school, [s.parent])
        await _say(teacher, meeting, "La réunion de parents aura lieu jeudi à l'école.")
        await _say(parent, meeting, "Merci, j'y serai.")
        deleted = await _say(teacher, meeting, DELETED)
        removed = await _say(parent, meeting, REMOVED)
        done = await teacher.request({"t": "delete", "conv": meeting, "seq": deleted})
        assert done["t"] == "ok", done
        moderated = await principal.request(
            {"t": "moderate", "conv": meeting, "seq": removed, "action": "remove", "reason": "Ton"}
        )
        assert moderated["t"] == "ok", moderated
        english = await _open(teacher, s.school, [s.parent_en])
        await _say(parent_en, english, "The meetings were running late, sorry")
        await _say(teacher, english, "Les élèves couraient dans le corridor.")
        outing = await _open(office, s.school, [s.teacher, s.parent, s.parent_b], title="Sortie")
        await _say(office, outing, "Autorisation pour la sortie au musée")
        assert (await teacher.request({"t": "leave", "conv": outing}))["t"] == "ok"
    return Scene(meeting, english, outing)


@pytest_asyncio.fixture(loop_scope="session")
async def scene(gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds) -> Scene:
    return await _scene(gateways, secret, school)


@pytest_asyncio.fixture(loop_scope="session")
async def owner_db(pg: LocalPostgres) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg.owner_dsn)
    try:
        yield conn
    finally:
        await conn.close()


# The view ---------------------------------------------------------------------------------------


async def test_withdrawn_messages_show_only_in_the_audit_view(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, scene: Scene
) -> None:
    """The audit view shows deleted and removed messages with who withdrew them, when and why;
    participants get them redacted, and nobody else may open the view."""
    s, conv = school, scene.meeting
    view = await _get(gateways[0], s.principal, f"{LIST}/{conv}", secret=secret)
    assert view.status_code == 200, view.text
    assert view.headers["cache-control"] == "no-store"
    doc = view.json()
    events = {e["seq"]: e for e in doc["events"]}
    assert [e["kind"] for e in doc["events"]] == ["created"] + ["message"] * 4 + [
        "deleted",
        "removed",
    ]
    assert events[4]["body"] == DELETED and events[4]["deleted"]["by"] == s.teacher
    assert events[4]["deleted"]["by_name"] == "Marie Enseignante"
    assert events[4]["deleted"]["at"] == events[6]["ts"] and events[4]["deleted"]["seq"] == 6
    assert events[5]["body"] == REMOVED and events[5]["removed"]["by"] == s.principal
    assert events[5]["removed"]["reason"] == "Ton" and events[5]["removed"]["seq"] == 7
    assert events[2]["lang"] == "fr" and "deleted" not in events[2]
    assert doc["school"] == {"id": s.school, "name": "École Fictive", "timezone": "America/Toronto"}
    assert {m["id"]: m["name"] for m in doc["members"]} == {
        s.teacher: "Marie Enseignante",
        s.parent: "Sam Fictif",
    }
    assert doc["integrity"]["last_hash"] == events[7]["hash"]
    for user, gw in ((s.teacher, gateways[0]), (s.parent, gateways[1])):
        async with connect(gw, secret, user) as member:
            fetched = (await member.request({"t": "fetch", "conv": conv}))["events"]
        over_http = await _get(gw, user, f"/api/conversations/{conv}/events", secret=secret)
        for seen in (fetched, over_http.json()["events"]):
            assert (seen[3]["body"], seen[3].get("deleted")) == (None, True)
            assert (seen[4]["body"], seen[4].get("removed")) == (None, True)
            assert DELETED not in str(seen) and REMOVED not in str(seen)
    for user in (s.teacher, s.parent, s.office, s.other_principal, s.parent_b):
        refused = await _get(gateways[1], user, f"{LIST}/{conv}", secret=secret)
        assert _error(refused) == (404, "not_found")
        assert DELETED not in refused.text


async def test_admin_subject_audits_any_school(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, scene: Scene
) -> None:
    """An admin subject lists, views and exports; an unknown school is `not_found` to them."""
    s = school
    listed = await _get(gateways[0], "admin", LIST, secret=secret, school=s.school)
    assert sorted(_convs(listed)) == sorted([scene.meeting, scene.english, scene.outing])
    view = await _get(gateways[1], "admin", f"{LIST}/{scene.meeting}", secret=secret)
    assert view.status_code == 200 and view.json()["events"][3]["body"] == DELETED
    export = await _get(
        gateways[1], "admin", f"{LIST}/{scene.meeting}/export", secret=secret, format="json"
    )
    assert export.json()["export"]["exported_by"] == {"id": "admin", "name": "admin"}
    unknown = await _get(gateways[0], "admin", LIST, secret=secret, school="no-such-school")
    assert _error(unknown) == (404, "not_found")


async def test_bad_tokens_and_missing_school_are_refused(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, scene: Scene
) -> None:
    """An expired or missing token is `unauthenticated` on every audit path; the list needs
    its school; a principal asking for another school is `forbidden`."""
    s = school
    expired = mint_token(secret, s.principal, ttl_s=60, now=time.time() - 3600)
    paths = [
        (LIST, {"school": s.school}),
        (f"{LIST}/{scene.meeting}", {}),
        (f"{LIST}/{scene.meeting}/export", {}),
        (READS, {"school": s.school}),
    ]
    for path, params in paths:
        refused = await _get(gateways[0], None, path, token=expired, **params)
        assert _error(refused) == (401, "unauthenticated"), path
        assert _error(await _get(gateways[0], None, path, **params)) == (401, "unauthenticated")
    missing = await _get(gateways[0], s.principal, LIST, secret=secret)
    assert _error(missing) == (400, "invalid")
    other = await _get(gateways[0], s.principal, LIST, secret=secret, school=s.other_school)
    assert _error(other) == (403, "forbidden")
    own = await _get(gateways[0], s.other_principal, LIST, secret=secret, school=s.other_school)
    assert _convs(own) == []


async def test_unknown_conversations_are_not_found(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, owner_db: asyncpg.Connection
) -> None:
    """Ids that name no conversation, even ones no conversation could have, are `not_found`
    to the principal, and leave no audit record."""
    s = school
    for conv in ("c_" + "0" * 20, "%00", "x" * 200, "é"):
        for suffix in ("", "/export"):
            response = await _get(gateways[0], s.principal, f"{LIST}/{conv}{suffix}", secret=secret)
            assert _error(response) == (404, "not_found"), conv
    count = await owner_db.fetchval("SELECT count(*) FROM audit_reads WHERE school = $1", s.school)
    assert count == 0


# Search -----------------------------------------------------------------------------------------


async def _search(gw: Gateway, secret: str, s: SchoolIds, **params: str) -> list[str]:
    return sorted(
        _convs(await _get(gw, s.principal, LIST, secret=secret, school=s.school, **params))
    )


async def test_search_ignores_accents_and_stems_each_language(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, scene: Scene
) -> None:
    """Full text finds French and English words whatever their accents, case or inflection,
    each message stemmed in its own language, withdrawn messages included."""
    s, gw = school, gateways[0]
    cases = {
        "reunion": [scene.meeting],
        "RÉUNIONS": [scene.meeting],
        "réunion jeudi": [scene.meeting],
        '"aura lieu"': [scene.meeting],
        "Ecole": [scene.meeting],
        "eleve": [scene.english],
        "meet": [scene.english],  # "meetings" stemmed in English; in French it would not match
        "run": [scene.english],
        "musee": [scene.outing],
        "4321": [scene.meeting],  # the deleted message
        "deplace": [scene.meeting],  # the removed one
        "jeudi -réunion": [],
        "piscine": [],
    }
    for q, expected in cases.items():
        assert await _search(gw, secret, s, q=q) == sorted(expected), q


async def test_search_treats_sql_metacharacters_as_text(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, scene: Scene
) -> None:
    """Queries full of SQL or text-search syntax are answered as plain searches; an empty or
    blank query does not filter; a query with a NUL or over 500 characters is `invalid`."""
    s, gw = school, gateways[1]
    everything = sorted([scene.meeting, scene.english, scene.outing])
    for q in (
        "'; DROP TABLE events; --",
        "' OR 1=1 --",
        "%",
        "_",
        "\\",
        "a & b | !c",
        "(((",
        ":*",
        "<->",
        '"',
        "$1",
        "et",  # a stop word only: nothing to look for, nothing found
    ):
        assert await _search(gw, secret, s, q=q) == [], q
    assert await _search(gw, secret, s, q="") == everything
    assert await _search(gw, secret, s, q="   ") == everything
    assert await _search(gw, secret, s, q="x" * 500) == []
    for q in ("x" * 501, "réunion\x00"):
        response = await _get(gw, s.principal, LIST, secret=secret, school=s.school, q=q)
        assert _error(response) == (400, "invalid")


async def test_search_by_member_past_or_present(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, scene: Scene
) -> None:
    """`member` finds the conversations a user is or was in; it combines with the text."""
    s, gw = school, gateways[0]
    assert await _search(gw, secret, s, member=s.parent_b) == [scene.outing]
    assert await _search(gw, secret, s, member=s.parent) == sorted([scene.meeting, scene.outing])
    assert await _search(gw, secret, s, member=s.teacher) == sorted(
        [scene.meeting, scene.english, scene.outing]
    )
    assert await _search(gw, secret, s, member=s.parent, q="musée") == [scene.outing]
    assert await _search(gw, secret, s, member=s.parent_b, q="réunion") == []
    assert await _search(gw, secret, s, member="nobody") == []
    listed = (await _get(gw, s.principal, LIST, secret=secret, school=s.school, q="musée")).json()
    outing = listed["conversations"][0]
    assert outing["title"] == "Sortie" and outing["member_count"] == 4
    assert {m["id"]: m["name"] for m in outing["members"]}[s.teacher] == "Marie Enseignante"


async def test_search_by_dates(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, scene: Scene
) -> None:
    """`from` and `to` (dates in the school's zone, or datetimes) select by event time, any
    range the calendar holds; an inverted range or an unreadable date is `invalid`."""
    s, gw = school, gateways[1]
    everything = sorted([scene.meeting, scene.english, scene.outing])
    today = datetime.now(UTC).date()
    before, after = str(today - timedelta(days=2)), str(today + timedelta(days=2))
    assert await _search(gw, secret, s, **{"from": before, "to": after}) == everything
    assert await _search(gw, secret, s, **{"from": after}) == []
    assert await _search(gw, secret, s, to=before) == []
    assert await _search(gw, secret, s, **{"from": "0001-01-01", "to": "9999-12-31"}) == everything
    assert await _search(gw, secret, s, **{"from": "9999-12-31"}) == []
    assert await _search(gw, secret, s, to="0001-01-01") == []
    assert await _search(gw, secret, s, **{"from": "2000-01-01T00:00:00Z"}) == everything
    assert await _search(gw, secret, s, to="1999-12-31T23:59:59+14:00") == []
    assert await _search(gw, secret, s, q="réunion", to=before) == []
    assert await _search(gw, secret, s, q="réunion", **{"from": before}) == [scene.meeting]
    assert await _search(gw, secret, s, **{"from": str(date.max), "to": str(date.max)}) == []
    for params in ({"from": after, "to": before}, {"from": "2026-13-45"}, {"to": "demain"}):
        response = await _get(gw, s.principal, LIST, secret=secret, school=s.school, **params)
        assert _error(response) == (400, "invalid"), params


async def _many_conversations(owner_db: asyncpg.Connection, s: SchoolIds, count: int) -> list[str]:
    """`count` conversations of the school, newest first, written straight into the database."""
    ids = [f"c_{s.prefix}_{i:04d}" for i in range(count)]
    await owner_db.executemany(
        "INSERT INTO conversations (id, school, kind, title, created_at)"
        " VALUES ($1, $2, 'group', $3, now() - $4 * interval '1 second')",
        [(conv, s.school, f"Groupe {i}", i) for i, conv in enumerate(ids)],
    )
    return ids


async def test_search_pages_at_most_100_with_a_cursor(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, owner_db: asyncpg.Connection
) -> None:
    """230 conversations over a range as wide as the calendar come in pages of at most 100,
    newest first, each once; limits beyond 1..100 and foreign or forged cursors are `invalid`."""
    s, gw = school, gateways[0]
    ids = await _many_conversations(owner_db, s, 230)
    pages: list[list[str]] = []
    params = {"school": s.school, "limit": "100"}
    while True:
        page = (await _get(gw, s.principal, LIST, secret=secret, **params)).json()
        pages.append([c["conv"] for c in page["conversations"]])
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert [len(p) for p in pages] == [100, 100, 30]
    assert [c for p in pages for c in p] == ids
    default = (await _get(gw, s.principal, LIST, secret=secret, school=s.school)).json()
    assert [c["conv"] for c in default["conversations"]] == ids[:50]
    reads_cursor = base64.urlsafe_b64encode(b'["r",1]').rstrip(b"=").decode()
    bad = [
        {"limit": "101"},
        {"limit": "0"},
        {"limit": "dix"},
        {"cursor": "pas-un-curseur!"},
        {"cursor": reads_cursor},
        {"cursor": base64.urlsafe_b64encode(b'["c","hier","x"]').decode()},
    ]
    for extra in bad:
        response = await _get(gw, s.principal, LIST, secret=secret, school=s.school, **extra)
        assert _error(response) == (400, "invalid"), extra


# Exports ----------------------------------------------------------------------------------------


def _pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in reader.pages))


async def test_pdf_export_states_everything_in_the_principals_language(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, scene: Scene
) -> None:
    """The PDF is an attachment naming the school, conversation, members, exporter and every
    event's original text with withdrawals marked, in French, or in English on request."""
    s, conv = school, scene.meeting
    response = await _get(gateways[1], s.principal, f"{LIST}/{conv}/export", secret=secret)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(rf'attachment; filename="audit-{conv}-\d{{8}}T\d{{6}}Z\.pdf"', disposition)
    text = _pdf_text(response.content)
    view = (await _get(gateways[0], s.principal, f"{LIST}/{conv}", secret=secret)).json()
    for expected in (
        "Dossier de conversation",
        "École Fictive",
        conv,
        "Conversation privée",
        "Marie Enseignante",
        "Sam Fictif",
        "Extrait par Dominique Directrice",
        "La réunion de parents aura lieu jeudi à l'école.",
        DELETED,
        "SUPPRIMÉ par son auteur, Marie Enseignante",
        REMOVED,
        "RETIRÉ par Dominique Directrice",
        "Motif : Ton",
        view["integrity"]["last_hash"],
        "America/Toronto",
        "page 1 de",
    ):
        assert expected in text, expected
    english = await _get(
        gateways[0], s.principal, f"{LIST}/{conv}/export", secret=secret, locale="en"
    )
    text = _pdf_text(english.content)
    assert "Conversation record" in text and "WITHDRAWN by Dominique Directrice" in text
    for params in ({"format": "xml"}, {"locale": "de"}):
        refused = await _get(
            gateways[0], s.principal, f"{LIST}/{conv}/export", secret=secret, **params
        )
        assert _error(refused) == (400, "invalid")


async def test_json_export_recomputes_to_the_stored_chain(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    scene: Scene,
    owner_db: asyncpg.Connection,
) -> None:
    """The JSON export names its exporter and record, and its events recompute, hash by hash,
    to the chain stored in the database."""
    s, conv = school, scene.meeting
    response = await _get(
        gateways[0], s.principal, f"{LIST}/{conv}/export", secret=secret, format="json"
    )
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"].endswith('.json"')
    doc = response.json()
    assert doc["export"]["exported_by"] == {"id": s.principal, "name": "Dominique Directrice"}
    assert doc["export"]["locale"] == "fr"
    record = await owner_db.fetchrow(
        "SELECT action, conv, at FROM audit_reads WHERE id = $1", doc["export"]["audit_record"]
    )
    assert (record["action"], record["conv"]) == ("export_json", conv)
    assert datetime.fromisoformat(doc["export"]["exported_at"]) == record["at"]
    prev = GENESIS
    for e in doc["events"]:
        prev = event_hash(
            prev,
            conv=conv,
            seq=e["seq"],
            kind=e["kind"],
            actor=e["actor"],
            body=e["body"],
            data=e["data"],
            target=e["target"],
            cid=e["cid"],
            lang=e["lang"],
            ts=datetime.fromisoformat(e["ts"]),
        )
        assert prev.hex() == e["hash"], e["seq"]
    stored = await owner_db.fetchval("SELECT last_hash FROM conversations WHERE id = $1", conv)
    assert doc["integrity"]["last_hash"] == prev.hex() == stored.hex()


# The trail of audit reads -----------------------------------------------------------------------


async def test_every_audit_read_is_recorded(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, scene: Scene
) -> None:
    """Each list, view, export and listing of reads is one record (who, what, which search,
    when, from where), listed newest first to the principal and to admins; refusals add none."""
    s, gw = school, gateways[1]
    conv = scene.meeting
    await _get(gw, s.teacher, LIST, secret=secret, school=s.school)
    await _get(gw, s.other_principal, f"{LIST}/{conv}", secret=secret)
    await _get(gw, s.principal, LIST, secret=secret, school=s.school, q="réunion", member=s.parent)
    await _get(gw, s.principal, f"{LIST}/{conv}", secret=secret)
    await _get(gw, s.principal, f"{LIST}/{conv}/export", secret=secret)
    await _get(gw, s.principal, f"{LIST}/{conv}/export", secret=secret, format="json")
    listed = await _get(gw, s.principal, READS, secret=secret, school=s.school)
    assert listed.status_code == 200, listed.text
    reads = listed.json()["reads"]
    assert [(r["action"], r["conv"]) for r in reads] == [
        ("reads", None),
        ("export_json", conv),
        ("export_pdf", conv),
        ("view", conv),
        ("list", None),
    ]
    assert {(r["reader"], r["reader_name"], r["address"], r["school"]) for r in reads} == {
        (s.principal, "Dominique Directrice", "127.0.0.1", s.school)
    }
    assert reads[-1]["search"] == {"q": "réunion", "member": s.parent, "limit": 50}
    assert [r["id"] for r in reads] == sorted((r["id"] for r in reads), reverse=True)
    first = await _get(gw, "admin", READS, secret=secret, school=s.school, limit="2")
    page = first.json()
    assert [r["action"] for r in page["reads"]] == ["reads", "reads"]
    assert page["reads"][0]["reader"] == "admin" and page["reads"][0]["reader_name"] is None
    second = await _get(
        gw, "admin", READS, secret=secret, school=s.school, limit="2", cursor=page["next"]
    )
    assert [r["action"] for r in second.json()["reads"]] == ["export_json", "export_pdf"]
    for user in (s.teacher, s.office, s.parent, s.other_principal):
        refused = await _get(gw, user, READS, secret=secret, school=s.school)
        assert _error(refused) == (403, "forbidden")


async def test_no_audit_read_without_its_record(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    scene: Scene,
    owner_db: asyncpg.Connection,
) -> None:
    """When the record cannot be written, the read fails too and shows nothing."""
    s, conv = school, scene.meeting
    await owner_db.execute(f"REVOKE INSERT ON audit_reads FROM {APP_ROLE}")
    try:
        for path, params in (
            (f"{LIST}/{conv}", {}),
            (f"{LIST}/{conv}/export", {}),
            (f"{LIST}/{conv}/export", {"format": "json"}),
            (LIST, {"school": s.school, "q": "réunion"}),
        ):
            response = await _get(gateways[0], s.principal, path, secret=secret, **params)
            assert response.status_code >= 400, path
            assert "réunion" not in response.text and conv not in response.text
    finally:
        await owner_db.execute(f"GRANT INSERT ON audit_reads TO {APP_ROLE}")
    count = await owner_db.fetchval("SELECT count(*) FROM audit_reads WHERE school = $1", s.school)
    assert count == 0


async def test_audit_reads_never_wait_for_the_conversations_writers(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    scene: Scene,
    owner_db: asyncpg.Connection,
) -> None:
    """While an append holds the conversation's row lock, its audit view and export still
    answer at once: recording a read locks nothing that the log's writers take."""
    s, conv = school, scene.meeting
    async with owner_db.transaction():
        await owner_db.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conv)
        for path in (f"{LIST}/{conv}", f"{LIST}/{conv}/export"):
            response = await asyncio.wait_for(
                _get(gateways[0], s.principal, path, secret=secret), 10
            )
            assert response.status_code == 200, response.text


async def test_audit_trail_is_append_only(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    scene: Scene,
    pg: LocalPostgres,
    owner_db: asyncpg.Connection,
) -> None:
    """Nobody changes or removes an audit record: the service's role lacks the rights, and the
    trigger stops even the schema's owner."""
    s = school
    await _get(gateways[0], s.principal, f"{LIST}/{scene.meeting}", secret=secret)
    writes = (
        "UPDATE audit_reads SET reader = 'quelqu''un' WHERE school = $1",
        "DELETE FROM audit_reads WHERE school = $1",
    )
    app_db = await asyncpg.connect(pg.app_dsn)
    try:
        for sql in writes:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await app_db.execute(sql, s.school)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await app_db.execute("TRUNCATE audit_reads")
    finally:
        await app_db.close()
    for sql in writes:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner_db.execute(sql, s.school)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await owner_db.execute("TRUNCATE audit_reads")
    rows = await owner_db.fetch(
        "SELECT reader, action FROM audit_reads WHERE school = $1", s.school
    )
    assert [(r["reader"], r["action"]) for r in rows] == [(s.principal, "view")]


async def test_refusals_are_logged_without_content(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, scene: Scene
) -> None:
    """A refused audit call is logged with its code and reason; no search text nor message
    body reaches the logs, refused or not."""
    s, gw = school, gateways[0]
    needle = "aiguille-confidentielle-7319"
    refused = await _get(gw, s.teacher, LIST, secret=secret, school=s.school, q=needle)
    assert _error(refused) == (403, "forbidden")
    await _get(gw, s.principal, LIST, secret=secret, school=s.school, q=needle)
    await _get(gw, s.principal, f"{LIST}/{scene.meeting}/export", secret=secret)
    lines = [line for line in gw.log().splitlines() if '"audit_refused"' in line]
    assert any(
        s.teacher in line and s.school in line and '"principal_only"' in line for line in lines
    ), lines
    for g in gateways:
        log = g.log()
        assert needle not in log
        assert "supprimer : code 4321" not in log and "envers l'enseignante" not in log
