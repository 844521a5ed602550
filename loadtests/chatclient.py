"""The client processes of the chat workloads (W2, W5): senders, receivers, the principal.

A worker is one OS process with its own event loop (uvloop), driven by the orchestrator through
a pipe. It holds connections to several targets at once (the service, the generic baseline,
the floor), so that the same processes alternate between them in one run. Each target is named
in the settings with the port its senders use (`a`), the port its receivers use (`b`) and the
subprotocol it speaks (msgpack for the service, JSON for the baselines).

Senders are open loop: each send is scheduled by the clock, never by a previous reply. Its
write time travels in the body (`TAG WRITTEN_NS FILLER`), so the receiver computes the
end-to-end latency on the machine-wide CLOCK_MONOTONIC. Receivers check every conversation's
seqs (each event exactly once, in order, with no gap) and, for W5, that no message is seen
between a `locked` event and the next `unlocked`.
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

import msgpack
import orjson

from loadtests import common
from loadtests.wsclient import WsClient, connect
from messaging.gateway.auth import mint_token

MSGPACK = "messaging.v1.msgpack"
FILLER = "Bonjour, petit rappel : la sortie au musée a lieu jeudi, merci de signer le formulaire."
NS = 1_000_000_000


def decode(payload: bytes, binary: bool) -> dict[str, Any]:
    frame: dict[str, Any] = msgpack.unpackb(payload) if binary else orjson.loads(payload)
    return frame


def sender_for(client: WsClient, subprotocol: str) -> Callable[[dict[str, Any]], None]:
    if subprotocol == MSGPACK:
        pack = msgpack.packb
        return lambda frame: client.send_binary(pack(frame))
    return lambda frame: client.send_text_bytes(orjson.dumps(frame))


@dataclass
class _Sender:
    """One teacher (or the principal): its conversation and its requests waiting for a reply."""

    pair: int
    client: WsClient
    send: Callable[[dict[str, Any]], None]
    conv: str = ""
    next_id: int = 1
    # request id -> (write time ns, step tag)
    pending: dict[int, tuple[int, str]] = field(default_factory=dict)
    control: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class _StepLog:
    sent: int = 0
    lag_ns: list[int] = field(default_factory=list)
    ok_ns: list[int] = field(default_factory=list)  #: send-to-ok latencies
    ack_at: list[int] = field(default_factory=list)  #: ok arrival times
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: W5: (conv, write time, seq or 0, error code or "") of every send
    outcomes: list[tuple[str, int, int, str]] | None = None


class ChatWorker:
    """A client process: `sender` (teachers) or `receiver` (parents)."""

    def __init__(self, role: str, index: int, settings: dict[str, Any]) -> None:
        self.role = role
        self.index = index
        self.s = settings
        self.procs: int = settings["sender_procs" if role == "sender" else "receiver_procs"]
        self.clients: list[WsClient] = []
        self.senders: dict[str, dict[int, _Sender]] = defaultdict(dict)
        # the principal's connections: a lock and its unlock are two frames, and the gateway's
        # flood control allows 20 frames/s per connection, so the locks are spread over several
        self.principals: list[_Sender] = []
        self.locks: list[dict[str, Any]] = []
        self.steps: dict[str, _StepLog] = defaultdict(_StepLog)
        self.outstanding: dict[str, int] = defaultdict(int)  #: tag -> sends without a reply
        self.drained: dict[str, asyncio.Event] = {}  #: tag -> set when its last reply came
        self.acked: dict[str, list[int]] = defaultdict(list)  #: conv -> acked seqs
        # receivers
        self.received: dict[str, list[int]] = defaultdict(list)  #: conv -> message seqs
        self.last_seq: dict[str, int] = {}
        self.locked: dict[str, bool] = {}
        self.latency: dict[str, list[int]] = defaultdict(list)  #: tag -> end-to-end ns
        self.lock_latency: dict[str, list[int]] = defaultdict(list)  #: tag -> ns
        self.messages = 0
        self.non_increasing = 0
        self.gaps = 0
        self.messages_while_locked = 0
        self.others: dict[str, int] = defaultdict(int)
        self.unexpected_closes: dict[int, int] = defaultdict(int)
        self.closing = False
        self._ready: dict[WsClient, asyncio.Future[dict[str, Any]]] = {}

    # Frames ---------------------------------------------------------------------------------

    def _on_close(self, client: WsClient) -> None:
        fut = self._ready.pop(client, None)
        if fut is not None and not fut.done():
            fut.set_exception(ConnectionError(f"closed with {client.close_code}"))
        if not self.closing:
            self.unexpected_closes[client.close_code or 1006] += 1

    def _on_sender_frame(self, client: WsClient, payload: bytes, binary: bool) -> None:
        frame = decode(payload, binary)
        t = frame.get("t")
        sender: _Sender = client.data  # type: ignore[assignment]
        if t == "ok" or t == "error":
            rid = frame.get("id")
            entry = sender.pending.pop(rid, None)  # type: ignore[arg-type]
            if entry is not None:
                self._on_reply(sender, entry, frame)
                return
            fut = sender.control.pop(rid, None)  # type: ignore[arg-type]
            if fut is not None and not fut.done():
                fut.set_result(frame)
                return
            self.others[f"unmatched_{t}"] += 1
        elif t == "ready":
            self._resolve_ready(client, frame)
        elif t == "event" and frame.get("kind") in ("locked", "unlocked"):
            self._lock_event(frame, time.monotonic_ns())
        else:
            self.others[str(t)] += 1

    def _on_reply(self, sender: _Sender, entry: tuple[int, str], frame: dict[str, Any]) -> None:
        now = time.monotonic_ns()
        written, tag = entry
        self.outstanding[tag] -= 1
        if self.outstanding[tag] == 0 and tag in self.drained:
            self.drained[tag].set()
        step = self.steps[tag]
        if frame["t"] == "ok":
            step.ok_ns.append(now - written)
            step.ack_at.append(now)
            self.acked[frame["conv"]].append(frame["seq"])
            if step.outcomes is not None:
                step.outcomes.append((sender.conv, written, frame["seq"], ""))
        else:
            code = str(frame.get("code"))
            step.errors[code] += 1
            if step.outcomes is not None:
                step.outcomes.append((sender.conv, written, 0, code))

    def _on_receiver_frame(self, client: WsClient, payload: bytes, binary: bool) -> None:
        frame = decode(payload, binary)
        t = frame.get("t")
        if t == "event":
            now = time.monotonic_ns()
            conv, seq = frame["conv"], frame["seq"]
            last = self.last_seq.get(conv, 0)
            if seq <= last:
                self.non_increasing += 1
            else:
                self.gaps += seq - last - 1
                self.last_seq[conv] = seq
            kind = frame.get("kind")
            if kind == "message":
                self.received[conv].append(seq)
                self.messages += 1
                if self.locked.get(conv):
                    self.messages_while_locked += 1
                tag, stamp, _ = frame["body"].split(" ", 2)
                self.latency[tag].append(now - int(stamp))
            elif kind in ("locked", "unlocked"):
                self._lock_event(frame, now)
        elif t == "ready":
            self._resolve_ready(client, frame)
        else:
            self.others[str(t)] += 1

    def _lock_event(self, frame: dict[str, Any], now: int) -> None:
        """A `locked` event carries its write time in its reason: `lock TAG WRITTEN_NS`."""
        if frame["kind"] == "unlocked":
            self.locked[frame["conv"]] = False
            return
        self.locked[frame["conv"]] = True
        parts = str(frame.get("reason") or "").split(" ")
        if len(parts) == 3 and parts[0] == "lock":
            self.lock_latency[parts[1]].append(now - int(parts[2]))

    def _resolve_ready(self, client: WsClient, frame: dict[str, Any]) -> None:
        fut = self._ready.pop(client, None)
        if fut is not None and not fut.done():
            fut.set_result(frame)

    # Commands ---------------------------------------------------------------------------------

    def my_pairs(self, lo: int, hi: int) -> list[int]:
        return [i for i in range(lo, hi) if i % self.procs == self.index]

    async def _hello(self, target: str, port: int, user: str, sender: bool) -> WsClient:
        sub = self.s["targets"][target]["sub"]
        handler = self._on_sender_frame if sender else self._on_receiver_frame
        client = await connect("127.0.0.1", port, "/ws", sub, handler, on_close=self._on_close)
        client.user = user
        ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._ready[client] = ready
        send = sender_for(client, sub)
        client.data = _Sender(-1, client, send)
        send({"t": "hello", "token": mint_token(self.s["secret"], user, ttl_s=6 * 3600)})
        await asyncio.wait_for(ready, 60)
        self.clients.append(client)
        return client

    async def connect(self, target: str, lo: int, hi: int) -> dict[str, Any]:
        """Connect (and, for senders, open the conversation of) each of my pairs in [lo, hi)."""
        started = time.monotonic()
        gate = asyncio.Semaphore(50)
        ports = self.s["targets"][target]
        is_sender = self.role == "sender"

        async def one(pair: int) -> None:
            user = common.teacher_id(pair) if is_sender else common.parent_id(pair)
            async with gate:
                client = await self._hello(
                    target, ports["a" if is_sender else "b"], user, is_sender
                )
                if is_sender:
                    sender: _Sender = client.data  # type: ignore[assignment]
                    sender.pair = pair
                    reply = await self._request(
                        sender,
                        {
                            "t": "open",
                            "school": self.s["school"],
                            "members": [common.parent_id(pair)],
                        },
                    )
                    if reply.get("t") != "ok":
                        raise RuntimeError(f"open refused for pair {pair}: {reply}")
                    sender.conv = reply["conv"]
                    self.senders[target][pair] = sender

        pairs = self.my_pairs(lo, hi)
        await asyncio.gather(*(one(p) for p in pairs))
        return {"connected": len(pairs), "seconds": round(time.monotonic() - started, 2)}

    async def connect_principal(self, count: int = 4) -> None:
        port = self.s["targets"]["service"]["a"]
        for _ in range(count):
            client = await self._hello("service", port, common.PRINCIPAL_ID, True)
            self.principals.append(client.data)  # type: ignore[arg-type]

    async def _request(self, sender: _Sender, frame: dict[str, Any]) -> dict[str, Any]:
        rid = sender.next_id
        sender.next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        sender.control[rid] = fut
        sender.send({**frame, "id": rid})
        return await asyncio.wait_for(fut, 60)

    async def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Open loop: send `rate * mine / active` messages/s, each at its scheduled time; the
        principal (W5) locks and unlocks meanwhile."""
        tag: str = spec["tag"]
        active: int = spec["active"]
        mine = self.senders[spec["target"]]
        senders = [mine[p] for p in sorted(mine) if p < active]
        step = self.steps[tag]
        if spec.get("log_sends"):
            step.outcomes = []
        lock_task = None
        if spec.get("locks") and self.principals:
            lock_task = asyncio.create_task(self._locks(spec, [s.conv for s in senders]))
        if senders:
            await self._send_loop(spec, senders, step)
        if lock_task is not None:
            await lock_task
        # wait for the acknowledgements of this step (the queue drains before the next step)
        drained = self.drained.setdefault(tag, asyncio.Event())
        if self.outstanding[tag] > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained.wait(), spec["drain_s"])
        return {
            "tag": tag,
            "sent": step.sent,
            "unacked": self.outstanding[tag],
            "ok_ns": step.ok_ns,
            "ack_at": step.ack_at,
            "lag_ns": step.lag_ns,
            "errors": dict(step.errors),
            "outcomes": step.outcomes or [],
        }

    async def _send_loop(
        self, spec: dict[str, Any], senders: list[_Sender], step: _StepLog
    ) -> None:
        tag: str = spec["tag"]
        my_rate = spec["rate"] * len(senders) / spec["active"]
        total = round(my_rate * spec["duration"])
        t0 = spec["start_at_ns"]
        interval_ns = NS / my_rate
        n = len(senders)
        mono = time.monotonic_ns
        i = 0
        await asyncio.sleep(max(0.0, (t0 - mono()) / NS))
        while i < total:
            due = min(total, int((mono() - t0) / interval_ns) + 1)
            while i < due:
                sender = senders[i % n]
                rid = sender.next_id
                sender.next_id += 1
                written = mono()
                sender.send(
                    {
                        "t": "send",
                        "id": rid,
                        "conv": sender.conv,
                        "cid": f"{tag}.{rid}",
                        "body": f"{tag} {written} {FILLER}",
                    }
                )
                sender.pending[rid] = (written, tag)
                self.outstanding[tag] += 1
                step.lag_ns.append(written - (t0 + int(i * interval_ns)))
                i += 1
            step.sent = i
            if i < total:
                await asyncio.sleep(max(0.0, (t0 + i * interval_ns - mono()) / NS))

    async def _locks(self, spec: dict[str, Any], convs: list[str]) -> None:
        """W5: `lock` a conversation at `rate`/s, `unlock` it `hold_s` after its `ok`."""
        if not convs:
            return
        locks = spec["locks"]
        count = int(locks["rate"] * spec["duration"])
        t0 = spec["start_at_ns"] + int(0.2 * NS)
        tasks = []
        for k in range(count):
            await asyncio.sleep(max(0.0, (t0 + k * NS / locks["rate"] - time.monotonic_ns()) / NS))
            principal = self.principals[k % len(self.principals)]
            tasks.append(
                asyncio.create_task(
                    self._lock_one(principal, spec["tag"], convs[k % len(convs)], locks["hold_s"])
                )
            )
        await asyncio.gather(*tasks)

    async def _lock_one(self, principal: _Sender, tag: str, conv: str, hold_s: float) -> None:
        written = time.monotonic_ns()
        reply = await self._request(
            principal, {"t": "lock", "conv": conv, "reason": f"lock {tag} {written}"}
        )
        record: dict[str, Any] = {
            "conv": conv,
            "lock_written": written,
            "lock_ok_at": time.monotonic_ns(),
            "lock_seq": reply.get("seq"),
            "lock_error": reply.get("code") if reply.get("t") == "error" else None,
        }
        await asyncio.sleep(hold_s)
        record["unlock_written"] = time.monotonic_ns()
        reply = await self._request(principal, {"t": "unlock", "conv": conv})
        record["unlock_seq"] = reply.get("seq")
        record["unlock_error"] = reply.get("code") if reply.get("t") == "error" else None
        self.locks.append(record)

    def counts(self) -> dict[str, Any]:
        if self.role == "sender":
            pending = sum(len(s.pending) for group in self.senders.values() for s in group.values())
            return {"acked": sum(len(v) for v in self.acked.values()), "pending": pending}
        return {"messages": self.messages}

    def collect(self) -> dict[str, Any]:
        common_part = {
            "others": dict(self.others),
            "unexpected_closes": dict(self.unexpected_closes),
            "lock_latency_ns": dict(self.lock_latency),
        }
        if self.role == "sender":
            return {"acked": dict(self.acked), "locks": self.locks, **common_part}
        return {
            "received": dict(self.received),
            "latency_ns": dict(self.latency),
            "non_increasing": self.non_increasing,
            "gaps": self.gaps,
            "messages_while_locked": self.messages_while_locked,
            **common_part,
        }

    async def close(self, _args: Any = None) -> dict[str, Any]:
        self.closing = True
        await asyncio.gather(*(c.close(timeout=5) for c in self.clients), return_exceptions=True)
        return {"closed": len(self.clients)}

    async def serve(self, pipe: multiprocessing.connection.Connection) -> None:
        loop = asyncio.get_running_loop()
        commands: dict[str, Callable[..., Any]] = {
            "connect": lambda args: self.connect(*args),
            "connect_principal": lambda _args: self.connect_principal(),
            "run": self.run,
            "close": self.close,
        }
        while True:
            command, args = await loop.run_in_executor(None, pipe.recv)
            if command == "quit":
                return
            try:
                if command == "counts":
                    result: Any = self.counts()
                elif command == "collect":
                    result = self.collect()
                elif command in commands:
                    result = await commands[command](args)
                else:
                    raise ValueError(f"unknown command {command!r}")
                pipe.send(("ok", result))
            except Exception:
                pipe.send(("error", traceback.format_exc()))


def _worker_main(
    role: str, index: int, settings: dict[str, Any], pipe: multiprocessing.connection.Connection
) -> None:
    common.die_with_parent()
    common.raise_nofile()
    worker = ChatWorker(role, index, settings)
    try:
        import uvloop
    except ImportError:
        asyncio.run(worker.serve(pipe))
    else:
        uvloop.run(worker.serve(pipe))


class WorkerPool:
    """Client processes and their command pipes."""

    def __init__(self) -> None:
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.pipes: dict[str, list[multiprocessing.connection.Connection]] = defaultdict(list)

    def start(self, role: str, count: int, settings: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        for index in range(count):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main,
                args=(role, index, settings, theirs),
                name=f"chat-{role}-{index}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.pipes[role].append(ours)

    def pids(self, role: str) -> list[int]:
        return [p.pid for p in self.procs if p.name.startswith(f"chat-{role}") and p.pid]

    def call(
        self,
        role: str,
        command: str,
        args: Any = (),
        timeout: float = 120.0,
        only: int | None = None,
    ) -> list[Any]:
        pipes = self.pipes[role] if only is None else [self.pipes[role][only]]
        for pipe in pipes:
            pipe.send((command, args))
        results = []
        deadline = time.monotonic() + timeout
        for pipe in pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"{role} workers did not answer {command!r} in {timeout:.0f}s")
            status, value = pipe.recv()
            if status != "ok":
                raise RuntimeError(f"{role} worker failed on {command!r}:\n{value}")
            results.append(value)
        return results

    def stop(self) -> None:
        for pipes in self.pipes.values():
            for pipe in pipes:
                with contextlib.suppress(Exception):
                    pipe.send(("quit", ()))
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
