"""The worker's job that sends scheduled bulk sends when they are due."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from messaging.gateway.services import broadcast_messages
from messaging.notifications.worker import WorkerContext
from messaging.store.broadcasts import release_due

log = structlog.get_logger(__name__)


async def release_due_broadcasts(ctx: WorkerContext) -> int:
    """Send what is due (each in its own transaction, claimed with SKIP LOCKED so that several
    workers never send one twice), then tell the connected recipients. A worker that dies
    between the commit and the publish loses no message: recipients get it on their next
    connection or resync, from Postgres."""
    sent = await release_due(ctx.pool, datetime.now(UTC), limit=20)
    for one in sent:
        log.info(
            "scheduled_broadcast_sent", broadcast=one.broadcast, recipients=one.recipient_count
        )
        await ctx.publish(broadcast_messages(one))
    return len(sent)
