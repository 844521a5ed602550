"""The audit documents: the JSON view of a conversation, and its export as JSON or PDF.

An export is what a principal hands over to a parent, the school board or a court. Both formats
state the conversation, the school, the members, the period and when and by whom it was
exported, then every event in order with its original content, withdrawn messages marked with
who withdrew them, when and why. The JSON holds every stored column of every event (timestamps
to the microsecond), so anyone can recompute the hash chain from it (messaging.domain.chain);
the PDF prints the last event's hash as the integrity reference.

The PDF uses the Bitstream Vera fonts that ship inside reportlab (accents render, no system font
is needed); times are in the school's time zone; texts are French or English.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import reportlab
from reportlab.lib import colors
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import (
    CondPageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from messaging.domain.chain import canonical_ts
from messaging.i18n import known, text
from messaging.store.audit import AuditEvent, AuditView

FORMAT_VERSION = 1
HASH_ALGORITHM = "sha256-chain"
SYSTEM_ACTOR = "system"
# the `created` event of a conversation with more members names them only in the members list
MAX_NAMED_IN_CREATED = 50


# JSON ---------------------------------------------------------------------------------------------


def _iso(ts: datetime | None) -> str | None:
    return canonical_ts(ts) if ts is not None else None


def _name(view: AuditView, user: str) -> str | None:
    return view.names.get(user)


def _event_json(view: AuditView, ev: AuditEvent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seq": ev.seq,
        "ts": _iso(ev.ts),
        "kind": ev.kind,
        "actor": ev.actor,
        "actor_name": _name(view, ev.actor),
        "body": ev.body,
        "lang": ev.lang,
        "cid": ev.cid,
        "target": ev.target,
        "data": ev.data,
        "hash": ev.hash.hex() if ev.hash is not None else None,
    }
    if ev.withdrawn is not None:
        w = ev.withdrawn
        out[w.kind] = {
            "by": w.by,
            "by_name": _name(view, w.by),
            "at": _iso(w.at),
            "seq": w.seq,
            "reason": w.reason,
        }
    return out


def _period(view: AuditView) -> tuple[datetime, datetime]:
    if not view.events:
        return view.created_at, view.created_at
    return view.events[0].ts, view.events[-1].ts


def view_json(view: AuditView) -> dict[str, Any]:
    """The audit view as the API answers it: nothing redacted."""
    start, end = _period(view)
    return {
        "conversation": {
            "id": view.conv,
            "kind": view.kind,
            "title": view.title,
            "owner": view.owner,
            "created_at": _iso(view.created_at),
            "locked": view.locked,
            "last_seq": view.last_seq,
        },
        "school": {"id": view.school, "name": view.school_name, "timezone": view.timezone},
        "members": [
            {
                "id": m.user,
                "name": _name(view, m.user),
                "role": m.role,
                "joined_at": _iso(m.joined_at),
                "left_at": _iso(m.left_at),
            }
            for m in view.members
        ],
        "period": {"from": _iso(start), "to": _iso(end)},
        "events": [_event_json(view, ev) for ev in view.events],
        "people": dict(sorted(view.names.items())),
        "integrity": {
            "algorithm": HASH_ALGORITHM,
            "last_seq": view.events[-1].seq if view.events else 0,
            "last_hash": view.last_hash.hex() if view.last_hash is not None else None,
        },
    }


@dataclass(frozen=True, slots=True)
class Export:
    """One export: the view, who asked for it, when, and in which language."""

    view: AuditView
    by: str
    by_name: str
    at: datetime
    locale: str
    # the number of the export's own record in the trail of audit reads
    record: int | None = None


def export_json(export: Export) -> dict[str, Any]:
    """The JSON export: the audit view and when, by whom and in which language it was made."""
    return {
        "export": {
            "format_version": FORMAT_VERSION,
            "exported_at": _iso(export.at),
            "exported_by": {"id": export.by, "name": export.by_name},
            "locale": export.locale,
            "audit_record": export.record,
        },
        **view_json(export.view),
    }


def filename(export: Export, extension: str) -> str:
    """A file name safe in a Content-Disposition header: ASCII letters, digits, `_` and `-`."""
    conv = re.sub(r"[^A-Za-z0-9_-]", "_", export.view.conv)[:80]
    stamp = export.at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"audit-{conv}-{stamp}.{extension}"


# PDF ----------------------------------------------------------------------------------------------

_FONTS_DIR = Path(reportlab.__file__).resolve().parent / "fonts"
_FONT = "AuditVera"
_FONT_BOLD = "AuditVera-Bold"
_FONT_ITALIC = "AuditVera-Italic"
_FONT_BOLD_ITALIC = "AuditVera-BoldItalic"
_MONO = "Courier"  # a standard PDF font: hashes and ids are ASCII
# reportlab's font registry and some of its caches are process-wide
_RENDER_LOCK = threading.Lock()


def _register_fonts() -> None:
    if _FONT in pdfmetrics.getRegisteredFontNames():
        return
    for name, file in (
        (_FONT, "Vera.ttf"),
        (_FONT_BOLD, "VeraBd.ttf"),
        (_FONT_ITALIC, "VeraIt.ttf"),
        (_FONT_BOLD_ITALIC, "VeraBI.ttf"),
    ):
        pdfmetrics.registerFont(TTFont(name, str(_FONTS_DIR / file)))
    pdfmetrics.registerFontFamily(
        _FONT, normal=_FONT, bold=_FONT_BOLD, italic=_FONT_ITALIC, boldItalic=_FONT_BOLD_ITALIC
    )


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=_FONT, fontSize=9.5, leading=12.5)
    return {
        "title": ParagraphStyle("title", base, fontName=_FONT_BOLD, fontSize=16, leading=20),
        "h2": ParagraphStyle(
            "h2", base, fontName=_FONT_BOLD, fontSize=12, leading=15, spaceBefore=10, spaceAfter=4
        ),
        "body": base,
        "small": ParagraphStyle("small", base, fontSize=8.5, leading=11, textColor=colors.grey),
        "head": ParagraphStyle(
            "head", base, fontName=_FONT_BOLD, spaceBefore=7, textColor="#1f3a5f"
        ),
        "text": ParagraphStyle("text", base, leftIndent=12),
        "mark": ParagraphStyle(
            "mark", base, leftIndent=12, fontName=_FONT_BOLD, textColor="#a4161a"
        ),
        "mono": ParagraphStyle("mono", base, fontName=_MONO, fontSize=8.5),
    }


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("America/Toronto")


def _label(prefix: str, value: str, locale: str) -> str:
    """The text for a closed value (a kind, a role), or the value itself if it has none."""
    key = f"{prefix}{value}"
    return text(key, locale) if known(key) else value


class _Texts:
    """The export's texts in one language; parameters are escaped for reportlab's markup."""

    def __init__(self, locale: str, zone: ZoneInfo, names: dict[str, str]) -> None:
        self.locale = locale
        self.zone = zone
        self.names = names

    def __call__(self, key: str, **params: Any) -> str:
        return text(key, self.locale, **{k: escape(str(v)) for k, v in params.items()})

    def time(self, ts: datetime | None) -> str:
        if ts is None:
            return ""
        return ts.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S %Z")

    def who(self, user: str) -> str:
        if user == SYSTEM_ACTOR:
            return text("audit_system", self.locale)
        name = self.names.get(user)
        return f"{name} ({user})" if name else user


def _markup(body: str) -> str:
    return escape(body).replace("\r\n", "\n").replace("\n", "<br/>")


def _exporter(export: Export) -> str:
    return export.by if export.by_name == export.by else f"{export.by_name} ({export.by})"


def _header(export: Export, t: _Texts, st: dict[str, ParagraphStyle]) -> list[Any]:
    view = export.view
    start, end = _period(view)
    kind = escape(_label("audit_kind_", view.kind, t.locale))
    state = "audit_state_locked" if view.locked else "audit_state_open"
    rows = [
        (t("audit_school"), f"{escape(view.school_name)} ({escape(view.school)})"),
        (t("audit_conversation"), f'<font name="{_MONO}">{escape(view.conv)}</font>'),
        (t("audit_kind"), kind),
        (t("audit_conv_title"), escape(view.title) if view.title else t("audit_no_title")),
        (t("audit_created_at"), t.time(view.created_at)),
        (t("audit_state"), t(state)),
        (t("audit_period"), t("audit_period_value", start=t.time(start), end=t.time(end))),
        (t("audit_event_count"), str(len(view.events))),
        (t("audit_timezone"), escape(str(t.zone.key))),
        (t("audit_exported_at"), t.time(export.at)),
        (t("audit_exported_by"), escape(_exporter(export))),
    ]
    if export.record is not None:
        rows.append((t("audit_record"), str(export.record)))
    table = Table(
        [[Paragraph(k, st["body"]), Paragraph(v, st["body"])] for k, v in rows],
        colWidths=[4.6 * cm, None],
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TEXTCOLOR", (0, 0), (0, -1), colors.grey),
                ("LINEBELOW", (0, 0), (-1, -2), 0.25, colors.lightgrey),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return [
        Paragraph(t("audit_doc_title"), st["title"]),
        Spacer(1, 6),
        Paragraph(t("audit_notice"), st["small"]),
        Spacer(1, 8),
        table,
    ]


def _members(view: AuditView, t: _Texts, st: dict[str, ParagraphStyle]) -> list[Any]:
    flows: list[Any] = [Paragraph(t("audit_members"), st["h2"])]
    for m in view.members:
        role = _label("audit_role_", m.role, t.locale)
        line = t(
            "audit_member_line",
            name=view.names.get(m.user, m.user),
            id=m.user,
            role=role,
            joined=t.time(m.joined_at),
        )
        if m.left_at is not None:
            line += t("audit_member_left", left=t.time(m.left_at))
        flows.append(Paragraph(line, st["body"]))
    return flows


def _describe(ev: AuditEvent, t: _Texts) -> str:
    reason = ev.data.get("reason")
    match ev.kind:
        case "created":
            listed = [m for m in ev.data.get("members") or [] if isinstance(m, str)]
            if len(listed) > MAX_NAMED_IN_CREATED:
                return t("audit_ev_created_many", count=len(listed))
            return t("audit_ev_created", members=", ".join(t.who(m) for m in listed))
        case "deleted":
            return t("audit_ev_deleted", target=ev.target)
        case "removed":
            return t("audit_ev_removed", target=ev.target, reason=reason or "")
        case "locked" if ev.actor == SYSTEM_ACTOR and reason == "no_staff":
            return t("audit_ev_locked_no_staff")
        case "locked":
            if reason:
                return t("audit_ev_locked", reason=reason)
            return t("audit_ev_locked_no_reason")
        case "unlocked":
            return t("audit_ev_unlocked")
        case "member_added":
            return t("audit_ev_member_added", user=t.who(str(ev.data.get("user", ""))))
        case "member_removed":
            return t("audit_ev_member_removed", user=t.who(str(ev.data.get("user", ""))))
        case _:
            return t("audit_ev_other", kind=ev.kind)


def _message(ev: AuditEvent, t: _Texts, st: dict[str, ParagraphStyle]) -> list[Any]:
    flows: list[Any] = []
    if isinstance(ev.data.get("reply_to"), int):
        flows.append(Paragraph(t("audit_reply_to", seq=ev.data["reply_to"]), st["small"]))
    body = ev.body if ev.body else None
    flows.append(
        Paragraph(_markup(body), st["text"])
        if body is not None
        else Paragraph(t("audit_empty_body"), st["small"])
    )
    body_en = ev.data.get("body_en")
    if isinstance(body_en, str) and body_en:
        flows.append(Paragraph("EN: " + _markup(body_en), st["text"]))
    files = [a for a in ev.data.get("attachments") or [] if isinstance(a, dict)]
    if files:
        listed = ", ".join(f"{a.get('name', a.get('id', ''))} ({a.get('type', '')})" for a in files)
        flows.append(Paragraph(t("audit_attachments", files=listed), st["small"]))
    w = ev.withdrawn
    if w is not None:
        key = "audit_withdrawn_deleted" if w.kind == "deleted" else "audit_withdrawn_removed"
        mark = t(key, by=t.who(w.by), at=t.time(w.at), seq=w.seq, reason=w.reason or "")
        flows.append(Paragraph(mark, st["mark"]))
    return flows


def _events(view: AuditView, t: _Texts, st: dict[str, ParagraphStyle]) -> list[Any]:
    flows: list[Any] = [Paragraph(t("audit_events"), st["h2"])]
    for ev in view.events:
        head = t("audit_event_head", seq=ev.seq, time=t.time(ev.ts), actor=t.who(ev.actor))
        # a heading never ends a page alone (keepWithNext would push a long message whole)
        flows += [CondPageBreak(2.5 * cm), Paragraph(head, st["head"])]
        if ev.kind == "message":
            flows += _message(ev, t, st)
        else:
            flows.append(Paragraph(_describe(ev, t), st["text"]))
    return flows


def _integrity(view: AuditView, t: _Texts, st: dict[str, ParagraphStyle]) -> list[Any]:
    flows: list[Any] = [Paragraph(t("audit_integrity"), st["h2"])]
    last = view.events[-1] if view.events else None
    if last is None or last.hash is None:
        return [*flows, Paragraph(t("audit_integrity_none"), st["body"])]
    return [
        *flows,
        Paragraph(t("audit_integrity_text", seq=last.seq), st["body"]),
        Spacer(1, 3),
        Paragraph(f"SHA-256 {last.hash.hex()}", st["mono"]),
    ]


def _numbered_canvas(footer: Callable[[int, int], str]) -> type[canvas.Canvas]:
    """A canvas that holds its pages until the end, so that each footer can say "page X of Y"."""

    class NumberedCanvas(canvas.Canvas):  # type: ignore[misc]  # reportlab is untyped
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self.setFont(_FONT, 7.5)
                self.setFillColor(colors.grey)
                self.drawCentredString(LETTER[0] / 2, 1.1 * cm, footer(number, total))
                super().showPage()
            super().save()

    return NumberedCanvas


def render_pdf(export: Export) -> bytes:
    """The PDF export; CPU-bound (run it in a thread from async code)."""
    view = export.view
    zone = _zone(view.timezone)
    t = _Texts(export.locale, zone, view.names)
    exported_at = t.time(export.at)

    def footer(page: int, pages: int) -> str:
        params = {"conv": view.conv, "at": exported_at, "page": page, "pages": pages}
        return text("audit_page", export.locale, **params)

    with _RENDER_LOCK:
        _register_fonts()
        st = _styles()
        story = [
            *_header(export, t, st),
            *_members(view, t, st),
            *_events(view, t, st),
            *_integrity(view, t, st),
        ]
        out = io.BytesIO()
        doc = SimpleDocTemplate(
            out,
            pagesize=LETTER,
            leftMargin=2 * cm,
            rightMargin=2 * cm,
            topMargin=2 * cm,
            bottomMargin=2 * cm,
            title=text("audit_doc_title", export.locale) + f" ({view.conv})",
            author=export.by_name,
            subject=f"{view.school_name} ({view.school}), {view.conv}",
            creator="messaging audit export",
        )
        doc.build(story, canvasmaker=_numbered_canvas(footer))
    return out.getvalue()
