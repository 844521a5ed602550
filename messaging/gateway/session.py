"""What each client frame does: a rule check, the store, a reply, and a publish after commit.

Handlers get the connection (for its user, its reply channel and its id) and a parsed frame.
A `send` does not hold up the reader: it is queued for the next group commit in arrival order,
and its `ok` follows when the commit is done, so a client may pipeline messages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from messaging.domain import authz
from messaging.domain.authz import Denial
from messaging.domain.models import ConvFacts, ConvKind, TargetFacts
from messaging.errors import ErrorCode, MessagingError
from messaging.gateway.events import from_stored
from messaging.protocol import frames
from messaging.store import attachments as attachment_rows
from messaging.store import broadcasts
from messaging.store import conversations as convs
from messaging.store.log import Append, Appended, read_range, read_since_many
from messaging.store.pool import translated_errors

if TYPE_CHECKING:
    from messaging.gateway.socket import Connection


async def ready(
    conn: Connection, resume: dict[str, int]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, int]]:
    """The `ready` frame, the events a resuming client missed, and per conversation the seq
    up to which these cover it (live events at or below it are duplicates)."""
    svc, user_id = conn.svc, conn.user_id
    limit = svc.settings.limits.resume_max_events
    async with translated_errors(), svc.pool.acquire() as db:
        conversations = await convs.conversations_of(db, user_id)
        missed = await read_since_many(db, user_id, sorted(resume.items()), limit)
    kinds = {c["conv"]: c["kind"] for c in conversations}
    covered = {c["conv"]: c["last_seq"] for c in conversations}
    for conv, after in resume.items():
        if conv in covered:
            covered[conv] = min(covered[conv], after + limit)
    for ev in missed:  # read after the list: it may go further than the list's last_seq
        covered[ev.conv] = max(covered.get(ev.conv, 0), ev.seq)
    assert conn.user is not None
    frame = {
        "t": "ready",
        "user": {
            "id": conn.user.id,
            "name": conn.user.name,
            "kind": conn.user.kind.value,
            "locale": conn.user.locale,
        },
        "conversations": conversations,
        "server_time": frames.iso_utc(datetime.now(UTC)),
    }
    locale = _locale(conn)
    events = [from_stored(ev, user_id, ConvKind(kinds[ev.conv]), locale) for ev in missed]
    for ev in missed:
        if kinds[ev.conv] == ConvKind.BROADCAST.value and ev.kind == "message":
            svc.deliveries.add(ev.conv, user_id)
    return frame, events, covered


def _locale(conn: Connection) -> str | None:
    return conn.user.locale if conn.user is not None else None


def _raise_denial(denial: Denial | None) -> None:
    if denial is not None:
        raise MessagingError(denial.code, denial.reason)


async def _facts(conn: Connection, conv_id: str) -> ConvFacts:
    async with translated_errors(), conn.svc.pool.acquire() as db:
        facts = await convs.facts_of(db, conv_id)
    if facts is None:
        raise MessagingError(ErrorCode.NOT_FOUND)
    return facts


# Handlers ---------------------------------------------------------------------------------------


async def on_open(conn: Connection, f: frames.Open) -> None:
    assert conn.user is not None
    opened = await convs.open_conversation(conn.svc.pool, conn.user, f.school, f.members, f.title)
    _publish(conn, opened.events)
    conn.send_frame(frames.ok(f.id, conv=opened.conv, created=opened.created))


async def on_add(conn: Connection, f: frames.Add) -> None:
    assert conn.user is not None
    events = await convs.add_members(conn.svc.pool, conn.user, f.conv, f.users)
    _publish(conn, events)
    conn.send_frame(frames.ok(f.id))


async def on_leave(conn: Connection, f: frames.Leave) -> None:
    events = await convs.leave(conn.svc.pool, conn.user_id, f.conv)
    _publish(conn, events)
    conn.send_frame(frames.ok(f.id))


def _publish(conn: Connection, events: list[Appended] | tuple[Appended, ...]) -> None:
    """Events the connection's own request caused: it gets an `ok` instead of them."""
    conn.svc.publish_events([replace(ev, origin=conn.conn_id) for ev in events])


def _post_rule(actor: str) -> Callable[[ConvFacts, TargetFacts | None], Denial | None]:
    def rule(conv: ConvFacts, _target: TargetFacts | None) -> Denial | None:
        return authz.may_post(conv, actor)

    return rule


def _reply_rule(
    actor: str, reply_to: int
) -> Callable[[ConvFacts, TargetFacts | None], Denial | None]:
    def rule(conv: ConvFacts, _target: TargetFacts | None) -> Denial | None:
        denial = authz.may_post(conv, actor)
        if denial is None and reply_to > conv.last_seq:
            return Denial(ErrorCode.INVALID, "reply_to_unknown")
        return denial

    return rule


def _delete_rule(actor: str) -> Callable[[ConvFacts, TargetFacts | None], Denial | None]:
    def rule(conv: ConvFacts, target: TargetFacts | None) -> Denial | None:
        return authz.may_delete(conv, actor, target)

    return rule


async def on_send(conn: Connection, f: frames.Send) -> None:
    conv, data = f.conv, dict[str, Any]()
    kind, owner = await conn.svc.conv_kind(f.conv)
    if kind is ConvKind.BROADCAST and owner != conn.user_id:
        # A recipient answering a bulk send: the reply goes privately to its sender, quoting it.
        assert conn.user is not None
        target = await broadcasts.reply_target(conn.svc.pool, conn.user, f.conv)
        _publish(conn, target.events)
        conv, data = target.conv, {"quote": target.quote}
    data["attachments"] = []
    if f.attachments:
        # Checked here for the event's fields and a clear refusal (a member, the school's
        # switch on, the sender's own uploads); ownership is checked again under the
        # conversation's lock by the append, which records the uses in the same transaction.
        data["attachments"] = await attachment_rows.for_send(
            conn.svc.pool, conn.user_id, conv, f.attachments
        )
    if f.reply_to is not None:
        data["reply_to"] = f.reply_to
    item = Append(
        conv=conv,
        actor=conn.user_id,
        kind="message",
        rule=_post_rule(conn.user_id)
        if f.reply_to is None
        else _reply_rule(conn.user_id, f.reply_to),
        body=f.body,
        data=data,
        cid=f.cid,
        origin=conn.conn_id,
        lang=conn.user.locale if conn.user is not None else None,
        attachments=f.attachments,
    )
    await _submit(
        conn, f.id, item, lambda ev: {"conv": ev.conv, "seq": ev.seq, "ts": frames.iso_utc(ev.ts)}
    )


async def on_delete(conn: Connection, f: frames.Delete) -> None:
    item = Append(
        conv=f.conv,
        actor=conn.user_id,
        kind="deleted",
        rule=_delete_rule(conn.user_id),
        target=f.seq,
        origin=conn.conn_id,
    )
    await _submit(conn, f.id, item, lambda ev: {"conv": ev.conv, "seq": ev.seq})


async def _submit(
    conn: Connection,
    request_id: int,
    item: Append,
    reply: Callable[[Appended], dict[str, Any]],
) -> None:
    """Queue the append now (keeping the client's order) and answer when it is committed."""
    await conn.inflight.acquire()
    started = time.perf_counter()
    fut = conn.svc.batcher.submit(item)

    def answer(done: asyncio.Future[Appended]) -> None:
        conn.inflight.release()
        conn.untrack(done)
        if done.cancelled():
            return
        exc = done.exception()
        if isinstance(exc, MessagingError):
            conn.reply_error(request_id, exc)
        elif exc is not None:
            conn.reply_error(request_id, MessagingError(ErrorCode.INTERNAL))
        else:
            conn.svc.metrics.send_commit.observe(time.perf_counter() - started)
            conn.send_frame(frames.ok(request_id, **reply(done.result())))

    conn.track(fut)
    fut.add_done_callback(answer)


async def on_fetch(conn: Connection, f: frames.Fetch) -> None:
    facts = await _facts(conn, f.conv)
    _raise_denial(authz.may_read(facts, conn.user_id))
    async with translated_errors(), conn.svc.pool.acquire() as db:
        events, more = await read_range(db, f.conv, after=f.after, before=f.before, limit=f.limit)
    if facts.kind == ConvKind.BROADCAST and any(ev.kind == "message" for ev in events):
        conn.svc.deliveries.add(f.conv, conn.user_id)
    conn.send_frame(
        frames.ok(
            f.id,
            events=[from_stored(ev, conn.user_id, facts.kind, _locale(conn)) for ev in events],
            more=more,
        )
    )


async def on_read(conn: Connection, f: frames.Read) -> None:
    moved = await convs.mark_read(conn.svc.pool, conn.user_id, f.conv, f.seq)
    conn.send_frame(frames.ok(f.id))
    if moved is not None:
        conn.svc.publish_ephemeral(
            frames.receipt(f.conv, conn.user_id, f.seq),
            [*moved.recipients, conn.user_id],
            conn.conn_id,
        )


async def on_typing(conn: Connection, f: frames.Typing) -> None:
    """Ephemeral and never stored; silently dropped where it may not go."""
    try:
        facts = await _facts(conn, f.conv)
    except MessagingError:
        return
    if authz.may_post(facts, conn.user_id) is not None or facts.kind == ConvKind.BROADCAST:
        return
    others = [m for m in facts.members if m != conn.user_id]
    conn.svc.publish_ephemeral(frames.typing(f.conv, conn.user_id), others, conn.conn_id)


async def on_hello(conn: Connection, f: frames.Hello) -> None:
    raise MessagingError(ErrorCode.INVALID, "hello_repeated")


def _oversight_rule(
    conn: Connection, check: Callable[[ConvFacts, TargetFacts | None], Denial | None] | None = None
) -> Callable[[ConvFacts, TargetFacts | None], Denial | None]:
    """The school's principal, member or not; others learn nothing of the conversation."""
    user = conn.user
    assert user is not None

    def rule(conv: ConvFacts, target: TargetFacts | None) -> Denial | None:
        denial = authz.may_oversee(user, conv.school)
        if denial is not None:
            member = user.id in conv.members
            return denial if member else Denial(ErrorCode.NOT_FOUND, "not_found")
        return check(conv, target) if check is not None else None

    return rule


def _moderation_target(conv: ConvFacts, target: TargetFacts | None) -> Denial | None:
    if target is None:
        return Denial(ErrorCode.NOT_FOUND, "not_found")
    if target.kind != "message":
        return Denial(ErrorCode.INVALID, "not_a_message")
    if target.redacted:
        return Denial(ErrorCode.CONFLICT, "already_deleted")
    return None


def _not_locked(conv: ConvFacts, _target: TargetFacts | None) -> Denial | None:
    return Denial(ErrorCode.CONFLICT, "already_locked") if conv.locked else None


def _locked(conv: ConvFacts, _target: TargetFacts | None) -> Denial | None:
    return None if conv.locked else Denial(ErrorCode.CONFLICT, "not_locked")


async def on_lock(conn: Connection, f: frames.Lock) -> None:
    item = Append(
        conv=f.conv,
        actor=conn.user_id,
        kind="locked",
        rule=_oversight_rule(conn, _not_locked),
        data={"reason": f.reason} if f.reason else {},
        sets_locked=True,
        origin=conn.conn_id,
    )
    await _submit(conn, f.id, item, lambda ev: {"conv": ev.conv, "seq": ev.seq})


async def on_unlock(conn: Connection, f: frames.Unlock) -> None:
    item = Append(
        conv=f.conv,
        actor=conn.user_id,
        kind="unlocked",
        rule=_oversight_rule(conn, _locked),
        sets_locked=False,
        origin=conn.conn_id,
    )
    await _submit(conn, f.id, item, lambda ev: {"conv": ev.conv, "seq": ev.seq})


async def on_moderate(conn: Connection, f: frames.Moderate) -> None:
    item = Append(
        conv=f.conv,
        actor=conn.user_id,
        kind="removed",
        rule=_oversight_rule(conn, _moderation_target),
        target=f.seq,
        data={"reason": f.reason},
        origin=conn.conn_id,
    )
    await _submit(conn, f.id, item, lambda ev: {"conv": ev.conv, "seq": ev.seq})


Handler = Callable[["Connection", Any], Awaitable[None]]

HANDLERS: dict[type, Handler] = {
    frames.Hello: on_hello,
    frames.Open: on_open,
    frames.Add: on_add,
    frames.Leave: on_leave,
    frames.Send: on_send,
    frames.Fetch: on_fetch,
    frames.Read: on_read,
    frames.Typing: on_typing,
    frames.Delete: on_delete,
    frames.Lock: on_lock,
    frames.Unlock: on_unlock,
    frames.Moderate: on_moderate,
}


async def dispatch(conn: Connection, frame: Any) -> None:
    conv = getattr(frame, "conv", None)
    if conv is None:
        await HANDLERS[type(frame)](conn, frame)
        return
    with structlog.contextvars.bound_contextvars(conv=conv):
        await HANDLERS[type(frame)](conn, frame)
