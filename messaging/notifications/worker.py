"""`messaging worker`: periodic jobs, the notifier first.

    notifications      every MESSAGING_WORKER_POLL_S: the (recipient, conversation) pairs with a
                       notification due are claimed one transaction each (several workers may
                       run), merged into one notification, checked against the recipient's hours
                       once more, sent by e-mail and Web Push, and marked in that transaction
    replan             every minute: held notifications of people whose hours, or whose school's
                       calendar, changed by other means than the API (a roster import)
    attachments        every 5 minutes: uploads that no message used (attachments/cleanup.py)
    retention          every hour: outbox rows done for more than 30 days

Another job is one more `PeriodicJob` given to `run_worker`:

    async def release_due_broadcasts(ctx: WorkerContext) -> object: ...
    run_worker(settings, [PeriodicJob("broadcasts", 5.0, release_due_broadcasts)])

A job that raises is logged and runs again at its next tick; SIGTERM lets running jobs finish
(within 15 s) and stops.

Delivery guarantee: at least once, with at most one duplicate per recipient and conversation
for each crash. The claim's transaction stays open while the notification is sent, so a worker
that dies before its commit leaves the rows pending, and the next worker sends them again: a
duplicate only when the crash fell between the SMTP server's acceptance and the commit. The copy
carries the same Message-ID (and the same push Topic), so most clients fold it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from redis.exceptions import RedisError

from messaging.bus.cluster import publish_once
from messaging.config import Settings
from messaging.domain import notify
from messaging.errors import MessagingError
from messaging.notifications.mail import MailError, SmtpSender, build_email
from messaging.notifications.push import PushSender
from messaging.notifications.templates import Rendered, conversation_link, render
from messaging.store import notifications as outbox
from messaging.store.pool import create_pool, translated_errors

log = structlog.get_logger(__name__)

PAIRS_PER_PASS = 200
RETENTION = timedelta(days=30)
STOP_GRACE_S = 15.0


@dataclass
class WorkerContext:
    """What a job may use: the settings, the database, and a way to tell connected clients."""

    settings: Settings
    pool: asyncpg.Pool

    async def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish to the gateways (PUBLISH, or SPUBLISH on a Redis Cluster). A failure is
        logged, never raised: clients catch up from Postgres when they next connect or resync."""
        if not messages:
            return
        try:
            await publish_once(self.settings.redis_url, messages)
        except (OSError, RedisError):
            log.warning("worker_publish_failed", messages=len(messages))

    async def publish_events(self, events: Iterable[Any]) -> None:
        """Publish appended events (`store.log.Appended`) to their members' gateways."""
        from messaging.gateway.services import event_messages

        await self.publish(event_messages(events))


Job = Callable[[WorkerContext], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    every_s: float
    run: Job


# The notifier ------------------------------------------------------------------------------------


class Notifier:
    """Claims due notifications, sends them, and records what happened."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        n = settings.notify
        self._settings = settings
        self._pool = pool
        self._delay_s = settings.notify_delay_s
        self._mail = (
            SmtpSender(settings.smtp_url, timeout_s=n.smtp_timeout_s, connections=n.concurrency)
            if settings.smtp_url
            else None
        )
        self._push = (
            PushSender(
                n.vapid_private_pem,
                n.vapid_subject,
                timeout_s=n.smtp_timeout_s,
                allow_http=n.push_allow_http,
            )
            if n.vapid_private_pem
            else None
        )
        self._slots = asyncio.Semaphore(n.concurrency)

    async def aclose(self) -> None:
        if self._mail is not None:
            await self._mail.aclose()
        if self._push is not None:
            await self._push.aclose()

    async def run(self, _ctx: WorkerContext) -> int:
        """One pass: every pair due now (in rounds of PAIRS_PER_PASS); returns how many."""
        done = 0
        while True:
            pairs = await outbox.due_pairs(self._pool, self._delay_s, PAIRS_PER_PASS)
            async with asyncio.TaskGroup() as tg:
                for recipient, conv in pairs:
                    tg.create_task(self._guarded(recipient, conv))
            done += len(pairs)
            if len(pairs) < PAIRS_PER_PASS:
                return done

    async def _guarded(self, recipient: str, conv: str) -> None:
        async with self._slots:
            try:
                await self._one(recipient, conv)
            except MessagingError as exc:  # the database went away: the rows stay pending
                log.warning("notification_deferred", recipient=recipient, conv=conv, code=exc.code)
            except Exception:
                log.exception("notification_crashed", recipient=recipient, conv=conv)

    async def _one(self, recipient: str, conv: str) -> None:
        async with translated_errors(), self._pool.acquire() as conn, conn.transaction():
            now = datetime.now(UTC)
            group = await outbox.claim(conn, recipient, conv, self._delay_s, now)
            if group is None:
                return
            if not group.member or not group.recipient.active:
                error = "left" if group.recipient.active else "inactive"
                await outbox.finish(conn, group, "cancelled", error=error, tried=False)
                return
            plan = notify.hold(group.recipient, group.calendar, now)
            if plan.held:
                await outbox.hold_again(conn, group, plan, now)
                log.info("notification_held", recipient=recipient, conv=conv, reason=plan.reason)
                return
            rendered = render(group, conversation_link(self._settings.notify.public_url, conv))
            if rendered is None:
                await outbox.finish(conn, group, "cancelled", error="withdrawn", tried=False)
                return
            await self._deliver(conn, group, rendered, now)

    async def _deliver(
        self, conn: asyncpg.Connection, group: outbox.Group, rendered: Rendered, now: datetime
    ) -> None:
        deliveries: list[outbox.Delivery] = []
        pushed = 0
        if group.attempts == 0:  # push is best effort: tried once, never repeated by a retry
            pushed = await self._send_push(conn, group, rendered, deliveries)
        mail_error: MailError | None = None
        mailed = False
        if self._mail is not None and group.email:
            try:
                await self._mail.send(_email(self._settings, group, rendered))
                mailed = True
                deliveries.append(outbox.Delivery("email", "sent"))
            except MailError as exc:
                mail_error = exc
        attempts = group.attempts + 1
        fields = {
            "recipient": group.recipient.id,
            "conv": group.conv,
            "messages": rendered.messages,
        }
        if mailed or (pushed and mail_error is None):
            await outbox.finish(conn, group, "sent", deliveries=deliveries)
            log.info("notification_sent", email=mailed, push=pushed, **fields)
        elif mail_error is None:
            deliveries.append(outbox.Delivery("none", "skipped", "no_channel"))
            await outbox.finish(conn, group, "failed", error="no_channel", deliveries=deliveries)
            log.warning("notification_unreachable", **fields)
        elif mail_error.permanent or notify.gives_up(attempts, self._settings.notify.max_attempts):
            deliveries.append(outbox.Delivery("email", "failed", mail_error.code))
            await outbox.finish(conn, group, "failed", error=mail_error.code, deliveries=deliveries)
            log.error("notification_failed", error=mail_error.code, attempts=attempts, **fields)
        else:
            wait = notify.retry_delay(attempts, self._settings.notify.retry_base_s)
            deliveries.append(outbox.Delivery("email", "retry", mail_error.code))
            await outbox.finish(
                conn,
                group,
                "pending",
                error=mail_error.code,
                retry_at=now + wait,
                deliveries=deliveries,
            )
            log.warning(
                "notification_retry",
                error=mail_error.code,
                attempts=attempts,
                wait_s=wait.total_seconds(),
                **fields,
            )

    async def _send_push(
        self,
        conn: asyncpg.Connection,
        group: outbox.Group,
        rendered: Rendered,
        deliveries: list[outbox.Delivery],
    ) -> int:
        if self._push is None:
            return 0
        sent = 0
        for sub in group.subscriptions:
            result = await self._push.send(sub, rendered.push, conv=group.conv)
            deliveries.append(outbox.Delivery("push", result.outcome, result.error))
            if result.outcome == "sent":
                sent += 1
                await outbox.subscription_ok(conn, sub.id)
            elif result.outcome == "gone":
                await outbox.subscription_gone(conn, sub.id)
                log.info("push_subscription_removed", user=group.recipient.id, error=result.error)
        return sent


def _email(settings: Settings, group: outbox.Group, rendered: Rendered) -> Any:
    assert group.email is not None
    return build_email(
        rendered,
        to_name=group.name,
        to_addr=group.email,
        from_addr=settings.notify.smtp_from,
        lang="en" if group.locale == "en" else "fr",
        conv=group.conv,
        notification_id=group.first_id,
    )


# Other jobs ---------------------------------------------------------------------------------------


class Replanner:
    """Re-plans held rows whose facts changed since the previous run (all of them at start)."""

    def __init__(self) -> None:
        self._since = datetime(2000, 1, 1, tzinfo=UTC)

    async def run(self, ctx: WorkerContext) -> int:
        started = datetime.now(UTC)
        count = await outbox.replan_changed(ctx.pool, self._since)
        self._since = started - timedelta(seconds=5)  # a commit in flight at `started`
        if count:
            log.info("notifications_replanned", rows=count)
        return count


async def delete_orphan_uploads(ctx: WorkerContext) -> int:
    from messaging.attachments.cleanup import delete_orphans
    from messaging.attachments.storage import open_storage

    return await delete_orphans(ctx.pool, open_storage(ctx.settings.attachment_store()))


async def retention(ctx: WorkerContext) -> int:
    return await outbox.delete_done(ctx.pool, RETENTION)


# Running ----------------------------------------------------------------------------------------


async def _every(job: PeriodicJob, ctx: WorkerContext, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await job.run(ctx)
        except Exception as exc:
            code = exc.code.value if isinstance(exc, MessagingError) else None
            if code is None:
                log.exception("worker_job_failed", job=job.name)
            else:
                log.warning("worker_job_failed", job=job.name, code=code)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), job.every_s)


async def run_worker(settings: Settings, extra_jobs: Sequence[PeriodicJob] = ()) -> int:
    """Run the notifier and the periodic jobs until SIGTERM or SIGINT."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=settings.db_pool_max)
    ctx = WorkerContext(settings, pool)
    notifier = Notifier(settings, pool)
    jobs = [
        PeriodicJob("notifications", settings.notify.poll_s, notifier.run),
        PeriodicJob("replan", 60.0, Replanner().run),
        PeriodicJob("attachments", 300.0, delete_orphan_uploads),
        PeriodicJob("retention", 3600.0, retention),
        *extra_jobs,
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker_started",
        jobs=[j.name for j in jobs],
        smtp=settings.smtp_url is not None,
        push=settings.notify.vapid_private_pem is not None,
        delay_s=settings.notify_delay_s,
    )
    tasks = [asyncio.create_task(_every(job, ctx, stop), name=job.name) for job in jobs]
    try:
        await stop.wait()
        _, late = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        await notifier.aclose()
        await pool.close()
        log.info("worker_stopped")
    return 0
