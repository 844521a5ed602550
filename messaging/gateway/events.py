"""Event frames as clients see them, built from committed or stored events.

Participants never see withdrawn content: a message that was deleted or removed comes back from
every read with `body` null, no attachments and `deleted` or `removed` set. Only the audit view
(the principal's) shows the original, and it does not use this module's redaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from messaging.domain.models import ConvKind
from messaging.protocol.frames import iso_utc
from messaging.store.log import Appended, StoredEvent


def event_frame(
    *,
    conv: str,
    seq: int,
    ts: datetime,
    kind: str,
    actor: str,
    body: str | None,
    data: dict[str, Any],
    target: int | None,
    cid: str | None,
    redacted_by: str | None = None,
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "t": "event",
        "conv": conv,
        "seq": seq,
        "ts": iso_utc(ts),
        "kind": kind,
        "actor": actor,
    }
    frame.update(data)
    if kind == "message":
        frame["body"] = body
        frame["cid"] = cid
        frame.setdefault("attachments", [])
        if redacted_by is not None:
            # Nothing of what was withdrawn stays: a client may have derived its cid from the
            # text, and a quote would point into what was removed.
            frame["body"] = None
            frame["attachments"] = []
            frame["cid"] = None
            frame.pop("reply_to", None)
            frame[redacted_by] = True
    if target is not None:
        frame["target"] = target
    return frame


def from_appended(ev: Appended) -> dict[str, Any]:
    return event_frame(
        conv=ev.conv,
        seq=ev.seq,
        ts=ev.ts,
        kind=ev.kind,
        actor=ev.actor,
        body=ev.body,
        data=ev.data,
        target=ev.target,
        cid=ev.cid,
    )


def from_stored(
    ev: StoredEvent, viewer: str, conv_kind: ConvKind | None = None, locale: str | None = None
) -> dict[str, Any]:
    frame = event_frame(
        conv=ev.conv,
        seq=ev.seq,
        ts=ev.ts,
        kind=ev.kind,
        actor=ev.actor,
        body=ev.body,
        data=ev.data,
        target=ev.target,
        cid=ev.cid,
        redacted_by=ev.redacted_by,
    )
    return for_viewer(frame, viewer, conv_kind, locale)


def for_viewer(
    frame: dict[str, Any],
    viewer: str,
    conv_kind: ConvKind | str | None,
    locale: str | None = None,
) -> dict[str, Any]:
    """What one member sees of a broadcast: its recipients never learn of each other (the
    `created` event lists the sender alone), and each reads the message in their language
    (`body_en` for English-speaking parents when the sender wrote one), with `lang`. The sender
    sees both texts."""
    if conv_kind != ConvKind.BROADCAST or viewer == frame["actor"]:
        return frame
    if frame["kind"] == "created":
        return {**frame, "members": [frame["actor"]]}
    if frame["kind"] == "message" and "body_en" in frame:
        body_en = frame["body_en"]
        shown = {k: v for k, v in frame.items() if k != "body_en"}
        if locale == "en" and body_en is not None and frame["body"] is not None:
            shown["body"] = body_en
            shown["lang"] = "en"
        else:
            shown["lang"] = "fr"
        return shown
    return frame
