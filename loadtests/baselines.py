"""The same-run baselines: what the machine and generic parts do without the service.

    python -m loadtests.baselines floor --port P
    python -m loadtests.baselines generic --port P --redis URL --secret S

- **floor**: a minimal server on the `websockets` library alone (asyncio, uvloop when
  installed), one process, no Redis, no database, no token check: the least a Python process
  on this machine pays to accept a WebSocket, echo a frame, relay a message from one socket to
  another, and write one frame to many sockets (`websockets.broadcast`).
- **generic**: the service's architecture built from generic parts: Starlette on uvicorn (the
  gateway's uvicorn settings), the token checked with PyJWT, and fan-out through Redis with
  encode/broadcaster, each socket subscribing to its user's channel and to the school's
  channel, in one task per subscription. No persistence: a `send` is acknowledged at once and
  its seq comes from a counter in memory.

Both speak the subset of the wire protocol the bench uses, in JSON text frames
(`messaging.v1.json`): `hello` -> `ready`; `open` -> `ok` {conv}; `send` -> `ok` {conv, seq}
and an `event` to the other members; `echo` -> the same frame back. A conversation's id names
its members (`g:alice,bob`, `f:` on the floor), so any process routes it without shared
state. A bulk send is `POST /broadcast` {conv, body} (floor: `GET /broadcast?conv=&body=`):
one `event` to every connected socket (floor) or to every subscriber of the school's channel
(generic).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

SUBPROTOCOL = "messaging.v1.json"
MAX_FRAME_BYTES = 64 * 1024
SCHOOL_CHANNEL = "generic:school"
# its own channel names: the service shares the bench's Redis (pub/sub ignores databases)
USER_CHANNEL = "generic:u:"


def conv_id(prefix: str, user: str, members: list[str]) -> str:
    return f"{prefix}:" + ",".join(sorted({user, *members}))


def members_of(conv: str) -> list[str]:
    return conv.split(":", 1)[1].split(",") if ":" in conv else []


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unverified_sub(token: str) -> str:
    """The floor checks nothing: the token's subject, read without its signature."""
    payload = token.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


class Relay:
    """What both baselines do with a frame, given a way to reach the members' sockets."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.seqs: dict[str, int] = defaultdict(int)

    def event(self, user: str, frame: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The reply to `frame`, and the event text for the other members (or None)."""
        t = frame.get("t")
        if t == "open":
            conv = conv_id(self.prefix, user, list(frame.get("members", ())))
            return {"t": "ok", "id": frame.get("id"), "conv": conv, "created": True}, None
        if t == "send":
            conv = frame["conv"]
            self.seqs[conv] += 1
            seq = self.seqs[conv]
            ts = _now()
            event = {
                "t": "event",
                "conv": conv,
                "seq": seq,
                "ts": ts,
                "kind": "message",
                "actor": user,
                "body": frame.get("body"),
                "cid": frame.get("cid"),
                "attachments": [],
            }
            reply = {"t": "ok", "id": frame.get("id"), "conv": conv, "seq": seq, "ts": ts}
            return reply, orjson.dumps(event).decode()
        if t == "echo":
            return frame, None
        return {"t": "error", "id": frame.get("id"), "code": "invalid", "message": str(t)}, None


def _broadcast_event(conv: str, body: str) -> str:
    frame = {
        "t": "event",
        "conv": conv,
        "seq": 2,
        "ts": _now(),
        "kind": "message",
        "actor": "office",
        "body": body,
        "attachments": [],
    }
    return orjson.dumps(frame).decode()


# ==============================================================================================
# The floor: websockets alone
# ==============================================================================================


async def run_floor(host: str, port: int) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.http11 import Request, Response

    sockets: dict[str, set[ServerConnection]] = defaultdict(set)
    every: set[ServerConnection] = set()
    relay = Relay("f")

    def process_request(conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/ws":
            return None
        if url.path == "/broadcast":
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            text = _broadcast_event(query.get("conv", "b"), query.get("body", ""))
            targets = list(every)
            broadcast(targets, text)
            return conn.respond(200, f"{len(targets)}\n")
        return conn.respond(200, "floor\n")

    def select_subprotocol(_conn: ServerConnection, offered: Any) -> Any:
        return SUBPROTOCOL if SUBPROTOCOL in offered else None

    async def handler(ws: ServerConnection) -> None:
        user = ""
        try:
            async for message in ws:
                try:
                    frame = orjson.loads(message)
                except orjson.JSONDecodeError:  # the idle bench's echo
                    await ws.send(message)
                    continue
                if frame.get("t") == "hello":
                    user = _unverified_sub(frame["token"])
                    sockets[user].add(ws)
                    every.add(ws)
                    ready = {"t": "ready", "user": {"id": user}, "conversations": []}
                    await ws.send(orjson.dumps(ready).decode())
                    continue
                reply, event = relay.event(user, frame)
                await ws.send(orjson.dumps(reply).decode())
                if event is not None:
                    members = members_of(frame["conv"])
                    targets = [s for m in members if m != user for s in sockets.get(m, ())]
                    broadcast(targets, event)
        except Exception:  # noqa: S110 - a client gone mid-frame: the floor just forgets it
            pass
        finally:
            every.discard(ws)
            if user:
                sockets[user].discard(ws)
                if not sockets[user]:
                    del sockets[user]

    async with serve(
        handler,
        host,
        port,
        process_request=process_request,
        select_subprotocol=select_subprotocol,
        compression=None,
        ping_interval=None,
        max_size=MAX_FRAME_BYTES,
        backlog=4096,
    ) as server:
        await server.serve_forever()


# ==============================================================================================
# The generic build: Starlette + encode/broadcaster on Redis
# ==============================================================================================


def _redis_backend(url: str) -> Any:
    """broadcaster's Redis backend, whose listener works with redis-py 8.

    broadcaster 0.3.1 reads with `PubSub.listen()`, which under redis-py 8 returns at once when
    it starts before the first subscription is confirmed; the listener then waits for a new
    subscription and misses every message meanwhile (nothing is ever delivered). This one
    polls `get_message` instead; everything else is broadcaster's.
    """
    from broadcaster import Event
    from broadcaster._backends.redis import RedisBackend

    class Backend(RedisBackend):
        async def _pubsub_listener(self) -> None:
            await self._ready.wait()
            while True:
                try:
                    message = await self._pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=1.0
                    )
                except RuntimeError:  # the first SUBSCRIBE has not made its connection yet
                    await asyncio.sleep(0.01)
                    continue
                except Exception as exc:  # never die silently (broadcaster's own listener does)
                    print(f"generic: listener error {exc!r}", file=sys.stderr, flush=True)
                    await asyncio.sleep(0.01)
                    continue
                if message is not None and message["type"] == "message":
                    await self._queue.put(
                        Event(message["channel"].decode(), message["data"].decode())
                    )

    return Backend(url)


def generic_app(redis_url: str, secret: str) -> Any:
    import anyio
    import jwt
    from broadcaster import Broadcast
    from starlette.applications import Starlette
    from starlette.requests import Request as HttpRequest
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    bus = Broadcast(backend=_redis_backend(redis_url))
    relay = Relay("g")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await bus.connect()
        try:
            # Held for the process's life: broadcaster's `subscribe` loses a queue when two
            # sockets are the first to subscribe to a channel at the same moment (the second
            # replaces the first's set), which the school's channel meets at every crowd of
            # connections; a channel that always has a subscriber never meets it.
            async with bus.subscribe(SCHOOL_CHANNEL):
                yield
        finally:
            await bus.disconnect()

    async def index(_request: HttpRequest) -> Response:
        return PlainTextResponse("generic")

    async def post_broadcast(request: HttpRequest) -> Response:
        doc = orjson.loads(await request.body())
        await bus.publish(SCHOOL_CHANNEL, _broadcast_event(doc["conv"], doc["body"]))
        return PlainTextResponse("queued", status_code=202)

    async def forward(ws: WebSocket, channel: str, ready: anyio.Event) -> None:
        async with bus.subscribe(channel) as subscriber:
            ready.set()
            async for event in subscriber:  # type: ignore[union-attr]
                if event is not None:
                    await ws.send_text(event.message)

    async def endpoint(ws: WebSocket) -> None:
        offered = ws.scope.get("subprotocols", [])
        await ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        try:
            hello = orjson.loads(await ws.receive_text())
            claims = jwt.decode(hello["token"], secret, algorithms=["HS256"], audience="messaging")
        except (WebSocketDisconnect, KeyError, ValueError, jwt.PyJWTError):
            with contextlib.suppress(Exception):
                await ws.close(code=4001)
            return
        user = str(claims["sub"])
        try:
            async with anyio.create_task_group() as tg:
                subscribed = [anyio.Event(), anyio.Event()]
                tg.start_soon(forward, ws, USER_CHANNEL + user, subscribed[0])
                tg.start_soon(forward, ws, SCHOOL_CHANNEL, subscribed[1])
                for event in subscribed:
                    await event.wait()
                ready = {"t": "ready", "user": {"id": user}, "conversations": []}
                await ws.send_text(orjson.dumps(ready).decode())
                try:
                    while True:
                        frame = orjson.loads(await ws.receive_text())
                        reply, event_text = relay.event(user, frame)
                        await ws.send_text(orjson.dumps(reply).decode())
                        if event_text is not None:
                            for member in members_of(frame["conv"]):
                                if member != user:
                                    await bus.publish(USER_CHANNEL + member, event_text)
                finally:
                    tg.cancel_scope.cancel()
        except* (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client left

    return Starlette(
        routes=[
            Route("/", index),
            Route("/broadcast", post_broadcast, methods=["POST"]),
            WebSocketRoute("/ws", endpoint),
        ],
        lifespan=lifespan,
    )


def run_generic(host: str, port: int, redis_url: str, secret: str) -> None:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            generic_app(redis_url, secret),
            host=host,
            port=port,
            ws="websockets-sansio",
            ws_max_size=MAX_FRAME_BYTES,
            ws_per_message_deflate=False,
            lifespan="on",
            log_config=None,
            access_log=False,
            backlog=4096,
        )
    )
    server.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.baselines", description=__doc__)
    parser.add_argument("kind", choices=("floor", "generic"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", help="Redis URL (generic)")
    parser.add_argument("--secret", help="HS256 secret of the tokens (generic)")
    args = parser.parse_args(argv)
    if args.kind == "floor":
        try:
            import uvloop
        except ImportError:
            asyncio.run(run_floor(args.host, args.port))
        else:
            uvloop.run(run_floor(args.host, args.port))
        return 0
    if not args.redis or not args.secret:
        parser.error("generic needs --redis and --secret")
    run_generic(args.host, args.port, args.redis, args.secret)
    return 0


if __name__ == "__main__":
    sys.exit(main())
