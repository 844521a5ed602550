"""The audit export documents, rendered from a fixed view and read back (PDF text via pypdf)."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pypdf import PdfReader

from messaging.audit_export import Export, export_json, filename, render_pdf, view_json
from messaging.domain.chain import GENESIS, event_hash
from messaging.store.audit import AuditEvent, AuditView, Member, Withdrawal

T0 = datetime(2026, 3, 5, 19, 3, 7, 250_000, tzinfo=UTC)  # 14:03:07 in Montréal (EST)
CONV = "c_0123456789abcdef0123"
NAMES = {
    "dir": "Dominique Directrice",
    "ens": "Marie Enseignante",
    "par": "Sam Fictif",
    "par-en": "Kim Fictional",
}
LONG_BODY = " ".join(f"mot{i}" for i in range(2_000))[:10_000]


def _events() -> list[AuditEvent]:
    specs: list[dict[str, Any]] = [
        {"kind": "created", "actor": "ens", "data": {"members": ["ens", "par"], "title": None}},
        {
            "kind": "message",
            "actor": "ens",
            "body": "La réunion de l'élève est jeudi.",
            "lang": "fr",
        },
        {"kind": "message", "actor": "par", "body": "Propos déplacés <b>&</b> {x}", "lang": "fr"},
        {"kind": "message", "actor": "par-en", "body": "See you Thursday", "lang": "en"},
        {"kind": "deleted", "actor": "ens", "target": 2},
        {
            "kind": "removed",
            "actor": "dir",
            "target": 3,
            "data": {"reason": "Propos irrespectueux"},
        },
        {"kind": "locked", "actor": "dir", "data": {"reason": "Enquête en cours"}},
        {"kind": "unlocked", "actor": "dir"},
        {"kind": "member_added", "actor": "ens", "data": {"user": "par-en"}},
        {"kind": "message", "actor": "ens", "body": LONG_BODY, "lang": "fr"},
        {"kind": "member_removed", "actor": "ens", "data": {"user": "ens"}},
        {"kind": "locked", "actor": "system", "data": {"reason": "no_staff"}},
    ]
    events, prev = [], GENESIS
    for seq, spec in enumerate(specs, start=1):
        fields = {
            "seq": seq,
            "ts": T0 + timedelta(minutes=seq),
            "kind": spec["kind"],
            "actor": spec["actor"],
            "body": spec.get("body"),
            "data": spec.get("data", {}),
            "target": spec.get("target"),
            "cid": f"cid-{seq}" if spec["kind"] == "message" else None,
            "lang": spec.get("lang"),
        }
        conv_fields = {k: v for k, v in fields.items() if k != "seq"}
        prev = event_hash(prev, conv=CONV, seq=seq, **conv_fields)
        events.append(AuditEvent(**fields, hash=prev))
    deleted = Withdrawal("deleted", "ens", events[4].ts, 5, None)
    removed = Withdrawal("removed", "dir", events[5].ts, 6, "Propos irrespectueux")
    events[1] = replace(events[1], withdrawn=deleted)
    events[2] = replace(events[2], withdrawn=removed)
    return events


def _view() -> AuditView:
    return AuditView(
        conv=CONV,
        kind="group",
        title="Sortie au musée",
        owner="ens",
        created_at=T0,
        locked=True,
        last_seq=12,
        school="erables",
        school_name="École des Érables",
        timezone="America/Toronto",
        members=(
            Member("ens", "staff", T0, T0 + timedelta(minutes=11)),
            Member("par", "parent", T0, None),
            Member("par-en", "parent", T0 + timedelta(minutes=9), None),
        ),
        events=tuple(_events()),
        names=NAMES,
    )


def _export(locale: str) -> Export:
    at = datetime(2026, 4, 1, 13, 30, tzinfo=UTC)
    return Export(_view(), "dir", NAMES["dir"], at, locale, record=42)


def _pdf_text(pdf: bytes) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return re.sub(r"\s+", " ", text), len(reader.pages)


@pytest.fixture(scope="module")
def pdf_fr() -> tuple[str, int]:
    return _pdf_text(render_pdf(_export("fr")))


@pytest.fixture(scope="module")
def pdf_en() -> tuple[str, int]:
    return _pdf_text(render_pdf(_export("en")))


def test_pdf_states_what_when_and_by_whom_in_french(pdf_fr: tuple[str, int]) -> None:
    """The French PDF names the conversation, school, members, period and the exporter."""
    text, pages = pdf_fr
    for expected in (
        "Dossier de conversation",
        "École des Érables (erables)",
        CONV,
        "Conversation de groupe",
        "Sortie au musée",
        "Marie Enseignante (ens)",
        "Sam Fictif (par)",
        "Kim Fictional (par-en)",
        "a quitté le 2026-03-05 14:14:07 EST",
        "du 2026-03-05 14:04:07 EST au 2026-03-05 14:15:07 EST",
        "Dominique Directrice (dir)",
        "2026-04-01 09:30:00 EDT",
        "America/Toronto",
        f"page 1 de {pages}",
        f"page {pages} de {pages}",
    ):
        assert expected in text, expected
    assert pages >= 2


def test_pdf_shows_withdrawn_messages_with_who_when_and_why(pdf_fr: tuple[str, int]) -> None:
    """Deleted and removed messages keep their original text, marked with who, when and why."""
    text, _ = pdf_fr
    assert "La réunion de l'élève est jeudi." in text
    assert "SUPPRIMÉ par son auteur, Marie Enseignante (ens), le 2026-03-05 14:08:07 EST" in text
    assert "Propos déplacés <b>&</b> {x}" in text
    assert "RETIRÉ par Dominique Directrice (dir) le 2026-03-05 14:09:07 EST" in text
    assert "Motif : Propos irrespectueux" in text


def test_pdf_shows_locks_unlocks_and_membership(pdf_fr: tuple[str, int]) -> None:
    """Locks carry who and why, automatic locks say so, and membership changes are listed."""
    text, _ = pdf_fr
    assert "A verrouillé la conversation. Motif : Enquête en cours" in text
    assert "A déverrouillé la conversation." in text
    assert "A ajouté Kim Fictional (par-en)." in text
    assert "Marie Enseignante (ens) a quitté la conversation." in text
    assert "verrouillée automatiquement" in text
    assert "N° 12" in text and "Système" in text


def test_pdf_prints_the_last_hash(pdf_fr: tuple[str, int]) -> None:
    """The chain hash of the last event is printed as the integrity reference."""
    text, _ = pdf_fr
    last = _view().events[-1].hash
    assert last is not None
    assert f"SHA-256 {last.hex()}" in text


def test_pdf_keeps_a_long_message_whole(pdf_fr: tuple[str, int]) -> None:
    """A 10,000-character message flows across pages instead of breaking the layout."""
    text, _ = pdf_fr
    assert "mot0 mot1 mot2" in text and "mot1385 mot1386" in text


def test_pdf_in_english(pdf_en: tuple[str, int]) -> None:
    """The English PDF carries the same facts with English texts."""
    text, pages = pdf_en
    for expected in (
        "Conversation record",
        "Group conversation",
        "DELETED by its sender, Marie Enseignante (ens), on 2026-03-05 14:08:07 EST",
        "WITHDRAWN by Dominique Directrice (dir) on 2026-03-05 14:09:07 EST",
        "Reason: Propos irrespectueux",
        "Locked the conversation. Reason: Enquête en cours",
        "Conversation locked automatically",
        "La réunion de l'élève est jeudi.",
        "See you Thursday",
        f"page 1 of {pages}",
    ):
        assert expected in text, expected
    assert "SUPPRIMÉ" not in text


def test_json_export_carries_the_same_content() -> None:
    """The JSON export states the export, holds every event as stored and each withdrawal."""
    doc = orjson.loads(orjson.dumps(export_json(_export("en"))))
    assert doc["export"] == {
        "format_version": 1,
        "exported_at": "2026-04-01T13:30:00.000000Z",
        "exported_by": {"id": "dir", "name": "Dominique Directrice"},
        "locale": "en",
        "audit_record": 42,
    }
    assert doc["school"] == {
        "id": "erables",
        "name": "École des Érables",
        "timezone": "America/Toronto",
    }
    assert [m["id"] for m in doc["members"]] == ["ens", "par", "par-en"]
    assert doc["period"] == {
        "from": "2026-03-05T19:04:07.250000Z",
        "to": "2026-03-05T19:15:07.250000Z",
    }
    events = doc["events"]
    assert [e["seq"] for e in events] == list(range(1, 13))
    assert events[1]["body"] == "La réunion de l'élève est jeudi."
    assert events[1]["deleted"]["by"] == "ens" and events[1]["deleted"]["seq"] == 5
    assert events[2]["removed"] == {
        "by": "dir",
        "by_name": "Dominique Directrice",
        "at": "2026-03-05T19:09:07.250000Z",
        "seq": 6,
        "reason": "Propos irrespectueux",
    }
    assert events[6]["data"] == {"reason": "Enquête en cours"}
    assert doc["integrity"]["last_hash"] == events[-1]["hash"]


def test_json_export_recomputes_its_chain() -> None:
    """Every stored column is in the JSON, so the hash chain can be recomputed from it alone."""
    doc = view_json(_view())
    prev = GENESIS
    for e in doc["events"]:
        prev = event_hash(
            prev,
            conv=doc["conversation"]["id"],
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
    assert prev.hex() == doc["integrity"]["last_hash"]


def test_file_name_is_safe() -> None:
    """The file name holds only safe characters, whatever the conversation id."""
    export = Export(
        replace(_view(), conv='c_"; rm -rf /'),
        "dir",
        "Dominique Directrice",
        datetime(2026, 4, 1, 13, 30, tzinfo=UTC),
        "fr",
    )
    assert filename(export, "pdf") == "audit-c____rm_-rf__-20260401T133000Z.pdf"


def test_pdf_of_a_crowded_conversation_counts_its_members() -> None:
    """A `created` event of more than 50 members gives their number; the list names them all."""
    members = [f"par-{i}" for i in range(60)]
    created = AuditEvent(
        seq=1,
        ts=T0,
        kind="created",
        actor="dir",
        body=None,
        data={"members": members},
        target=None,
        cid=None,
        lang=None,
        hash=None,
    )
    view = replace(
        _view(),
        kind="broadcast",
        events=(created,),
        members=tuple(Member(m, "recipient", T0, None) for m in members),
    )
    text, _ = _pdf_text(render_pdf(Export(view, "dir", NAMES["dir"], T0, "fr")))
    assert "Conversation créée avec 60 participants" in text
    assert "par-59 (par-59), destinataire du communiqué" in text
    assert "Communiqué" in text and "Aucune empreinte" in text
