"""The client processes of W3 (bulk sends) and W4 (reconnection storm): many idle parents.

A worker holds thousands of lean connections (loadtests/wsclient.py, `messaging.v1.json`) to
any of the targets (the service's gateways, the generic baseline, the `websockets` floor). Each
connected parent is a `Member` that outlives its connections: it keeps, per conversation, every
seq it received, so a reconnection resumes from what it really has (`hello` with `resume`) and
the bench can check afterwards that nothing was lost, duplicated or reordered across the drop.

A worker can also hold the teachers of W4: they open a group conversation with their class's
parents and send into it, open loop, while the parents drop and come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtests import common
from loadtests.wsclient import WsClient, connect
from messaging.gateway.auth import mint_token

SUBPROTOCOL = "messaging.v1.json"
NS = 1_000_000_000


@dataclass
class Member:
    """One connected parent (or teacher) on one target, across its reconnections."""

    user: str
    target: str
    port: int
    client: WsClient | None = None
    seqs: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    #: for each seq received, the connection it came on (0: the first, 1: after the storm)
    gens: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    gen: int = -1
    arrivals: dict[str, float] = field(default_factory=dict)  #: conv -> first message arrival
    must_reach: dict[str, int] = field(default_factory=dict)  #: from `ready`, when resuming
    ready: asyncio.Future[None] | None = None
    caught_up: asyncio.Future[None] | None = None
    # a teacher's conversation and its requests waiting for a reply
    conv: str = ""
    next_id: int = 1
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    def resume_map(self) -> dict[str, int]:
        return {conv: max(seqs) for conv, seqs in self.seqs.items() if seqs}

    def check_caught_up(self) -> None:
        if self.caught_up is None or self.caught_up.done():
            return
        for conv, last in self.must_reach.items():
            seen = self.seqs.get(conv)
            if seen and max(seen) < last:
                return
        self.caught_up.set_result(None)


class CrowdWorker:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.s = settings
        self.members: dict[str, list[Member]] = defaultdict(list)  #: target -> members
        self.teachers: list[Member] = []
        self.acked: dict[str, list[int]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.unexpected_closes: dict[int, int] = defaultdict(int)
        self.dropping = False
        self._flow: asyncio.Task[None] | None = None
        self._stop_flow = asyncio.Event()

    # Frames -------------------------------------------------------------------------------------

    def _on_frame(self, client: WsClient, payload: bytes, _binary: bool) -> None:
        member: Member = client.data  # type: ignore[assignment]
        if client is not member.client:
            return  # a connection already dropped
        frame = orjson.loads(payload)
        t = frame.get("t")
        if t == "event":
            conv = frame["conv"]
            member.seqs[conv].append(frame["seq"])
            member.gens[conv].append(member.gen)
            if frame.get("kind") == "message" and conv not in member.arrivals:
                member.arrivals[conv] = time.monotonic()
            if member.must_reach:
                member.check_caught_up()
        elif t == "ready":
            known = {c["conv"]: c["last_seq"] for c in frame.get("conversations", ())}
            member.must_reach = {c: known[c] for c in member.seqs if c in known}
            if member.ready is not None and not member.ready.done():
                member.ready.set_result(None)
            member.check_caught_up()
        elif t in ("ok", "error"):
            fut = member.pending.pop(frame.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(frame)

    def _on_close(self, client: WsClient) -> None:
        member: Member = client.data  # type: ignore[assignment]
        if member.ready is not None and not member.ready.done():
            member.ready.set_exception(ConnectionError(f"closed with {client.close_code}"))
        if client is member.client and not self.dropping:
            self.unexpected_closes[client.close_code or 1006] += 1

    async def _open(self, member: Member, resume: bool) -> None:
        loop = asyncio.get_running_loop()
        member.ready = loop.create_future()
        member.caught_up = loop.create_future()
        member.must_reach = {}
        member.gen += 1
        client = await connect(
            "127.0.0.1", member.port, "/ws", SUBPROTOCOL, self._on_frame, on_close=self._on_close
        )
        client.user = member.user
        client.data = member
        member.client = client
        hello: dict[str, Any] = {
            "t": "hello",
            "token": mint_token(self.s["secret"], member.user, ttl_s=6 * 3600),
        }
        if resume:
            hello["resume"] = member.resume_map()
        client.send_text_bytes(orjson.dumps(hello))
        await asyncio.wait_for(member.ready, 120)

    # Commands -----------------------------------------------------------------------------------

    async def connect(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Connect `spec["users"]` ((user, port) pairs) to `spec["target"]`."""
        gate = asyncio.Semaphore(spec["concurrency"])
        failures: list[str] = []
        target = spec["target"]
        started = time.monotonic()

        async def one(user: str, port: int) -> None:
            member = Member(user, target, port)
            async with gate:
                try:
                    await self._open(member, resume=False)
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    return
            self.members[target].append(member)

        await asyncio.gather(*(one(u, p) for u, p in spec["users"]))
        return {
            "opened": len(spec["users"]) - len(failures),
            "failed": len(failures),
            "failures": failures[:3],
            "seconds": round(time.monotonic() - started, 3),
        }

    def arrivals(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Who got the message of conversation `conv` on `target`, and when."""
        conv = spec["conv"]
        times = []
        duplicates = 0
        for member in self.members[spec["target"]]:
            seqs = [s for s in member.seqs.get(conv, ()) if s == spec.get("seq", 2)]
            if seqs:
                duplicates += len(seqs) - 1
                times.append(member.arrivals.get(conv, 0.0))
        return {
            "received": len(times),
            "duplicates": duplicates,
            "times": times if spec.get("times") else [],
            "last": max(times, default=0.0),
        }

    async def storm(self, spec: dict[str, Any]) -> dict[str, Any]:
        """At `start_at_ns`, drop every connection of `users` on `target` at once (no close
        handshake, as a lost network would), then bring them all back concurrently, resuming
        (the service) or plain (the baselines); time each back to `ready` and to caught up."""
        wanted = set(spec["users"])
        members = [m for m in self.members[spec["target"]] if m.user in wanted]
        await asyncio.sleep(max(0.0, (spec["start_at_ns"] - time.monotonic_ns()) / NS))
        self.dropping = True
        dropped_at = time.monotonic()
        for member in members:
            if member.client is not None:
                member.client.abort()
        await asyncio.sleep(0)
        self.dropping = False
        gate = asyncio.Semaphore(spec["concurrency"])
        ready_s: list[float] = []
        caught_s: list[float] = []
        failures: list[str] = []

        async def back(member: Member) -> None:
            async with gate:
                try:
                    await self._open(member, resume=spec["resume"])
                    ready_s.append(time.monotonic() - dropped_at)
                    assert member.caught_up is not None
                    await asyncio.wait_for(member.caught_up, 60)
                    caught_s.append(time.monotonic() - dropped_at)
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(back(m) for m in members))
        return {
            "dropped": len(members),
            "ready_s": ready_s,
            "caught_up_s": caught_s,
            "failed": len(failures),
            "failures": failures[:3],
        }

    async def connect_teachers(self, spec: dict[str, Any]) -> dict[str, str]:
        """Teachers (user, port, members) each open a group with their class's parents."""
        opened: dict[str, str] = {}
        for user, port, members in spec["teachers"]:
            teacher = Member(user, "service", port)
            await self._open(teacher, resume=False)
            reply = await self._request(
                teacher,
                {
                    "t": "open",
                    "school": self.s["school"],
                    "members": members,
                    "title": f"Classe {user}",
                },
            )
            if reply.get("t") != "ok":
                raise RuntimeError(f"group refused for {user}: {reply}")
            teacher.conv = reply["conv"]
            self.teachers.append(teacher)
            opened[user] = teacher.conv
        return opened

    async def _request(self, member: Member, frame: dict[str, Any]) -> dict[str, Any]:
        assert member.client is not None
        rid = member.next_id
        member.next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        member.pending[rid] = fut
        member.client.send_text_bytes(orjson.dumps({**frame, "id": rid}))
        return await asyncio.wait_for(fut, 60)

    def start_flow(self, spec: dict[str, Any]) -> None:
        """The teachers send `rate` messages/s in all, open loop, until `stop_flow`."""
        self._stop_flow.clear()
        self._flow = asyncio.create_task(self._send_loop(spec["rate"]))

    async def _send_loop(self, rate: float) -> None:
        interval = 1.0 / rate
        started = time.monotonic()
        i = 0
        replies = []
        while not self._stop_flow.is_set():
            teacher = self.teachers[i % len(self.teachers)]
            frame = {
                "t": "send",
                "conv": teacher.conv,
                "cid": f"s{i}",
                "body": f"Message {i} de la classe.",
            }
            replies.append(asyncio.create_task(self._send_one(teacher, frame)))
            i += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stop_flow.wait(), max(0.0, started + i * interval - time.monotonic())
                )
        await asyncio.gather(*replies)

    async def _send_one(self, teacher: Member, frame: dict[str, Any]) -> None:
        try:
            reply = await self._request(teacher, frame)
        except Exception as exc:
            self.errors[type(exc).__name__] += 1
            return
        if reply.get("t") == "ok":
            self.acked[reply["conv"]].append(reply["seq"])
        else:
            self.errors[str(reply.get("code"))] += 1

    async def stop_flow(self, _args: Any = None) -> dict[str, Any]:
        self._stop_flow.set()
        if self._flow is not None:
            await self._flow
        return {"acked": dict(self.acked), "errors": dict(self.errors)}

    def verify(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Each member of `target` against the final seq of each conversation in `finals`:
        every seq from its first to the final one, in order. A seq received twice on one
        connection before the storm is a duplicate; one received again after the storm is a
        redelivery (delivery is at least once: a client drops it by (conv, seq)), counted apart.
        Reordered: a seq first seen after a higher one."""
        finals: dict[str, int] = spec["finals"]
        lost = duplicated = redelivered = reordered = checked = 0
        for member in self.members[spec["target"]]:
            for conv, final in finals.items():
                seqs = member.seqs.get(conv)
                if not seqs:
                    continue
                checked += 1
                first_gen: dict[int, int] = {}
                highest = 0
                for seq, gen in zip(seqs, member.gens[conv], strict=True):
                    if seq in first_gen:
                        if gen == 0 and first_gen[seq] == 0:
                            duplicated += 1
                        else:
                            redelivered += 1
                        continue
                    first_gen[seq] = gen
                    if seq < highest:
                        reordered += 1
                    highest = max(highest, seq)
                lost += len(set(range(min(seqs), final + 1)) - first_gen.keys())
        return {
            "checked": checked,
            "lost": lost,
            "duplicated": duplicated,
            "redelivered_after_resume": redelivered,
            "reordered": reordered,
            "unexpected_closes": dict(self.unexpected_closes),
        }

    async def close(self, _args: Any = None) -> int:
        self.dropping = True
        clients = [m.client for ms in self.members.values() for m in ms if m.client is not None]
        clients += [t.client for t in self.teachers if t.client is not None]
        for client in clients:
            client.abort()
        return len(clients)

    async def serve(self, pipe: multiprocessing.connection.Connection) -> None:
        loop = asyncio.get_running_loop()
        commands: dict[str, Callable[[Any], Any]] = {
            "connect": self.connect,
            "storm": self.storm,
            "connect_teachers": self.connect_teachers,
            "stop_flow": self.stop_flow,
            "close": self.close,
        }
        while True:
            command, args = await loop.run_in_executor(None, pipe.recv)
            if command == "quit":
                return
            try:
                if command == "arrivals":
                    result: Any = self.arrivals(args)
                elif command == "verify":
                    result = self.verify(args)
                elif command == "start_flow":
                    self.start_flow(args)
                    result = None
                elif command in commands:
                    result = await commands[command](args)
                else:
                    raise ValueError(f"unknown command {command!r}")
                pipe.send(("ok", result))
            except Exception:
                pipe.send(("error", traceback.format_exc()))


def _worker_main(settings: dict[str, Any], pipe: multiprocessing.connection.Connection) -> None:
    common.die_with_parent()
    common.raise_nofile()
    worker = CrowdWorker(settings)
    try:
        import uvloop
    except ImportError:
        asyncio.run(worker.serve(pipe))
    else:
        uvloop.run(worker.serve(pipe))


class Crowd:
    """Worker processes and their pipes; `call` sends one argument to each (or to one)."""

    def __init__(self, count: int, settings: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.pipes: list[multiprocessing.connection.Connection] = []
        for index in range(count):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main, args=(settings, theirs), name=f"crowd-{index}", daemon=True
            )
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.pipes.append(ours)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid]

    def call(
        self, command: str, args: list[Any], timeout: float = 300.0, pipes: list[int] | None = None
    ) -> list[Any]:
        chosen = [self.pipes[i] for i in (pipes if pipes is not None else range(len(self.pipes)))]
        for pipe, arg in zip(chosen, args, strict=True):
            pipe.send((command, arg))
        results = []
        deadline = time.monotonic() + timeout
        for pipe in chosen:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"crowd workers did not answer {command!r} in {timeout:.0f}s")
            status, value = pipe.recv()
            if status != "ok":
                raise RuntimeError(f"crowd worker failed on {command!r}:\n{value}")
            results.append(value)
        return results

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send(("quit", ()))
        for proc in self.procs:
            proc.join(3)
            if proc.is_alive():
                proc.kill()
                proc.join()
