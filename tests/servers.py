"""Real `messaging serve` processes for end-to-end tests, and a small protocol client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack
import websockets

from messaging.devservices import free_port
from messaging.gateway.auth import mint_token
from tests.rosters import SchoolIds, roster_doc


@dataclass
class Gateway:
    """One `messaging serve` process."""

    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start_gateway(env: Mapping[str, str], log_dir: Path, **extra: str) -> Gateway:
    port = free_port()
    log_path = log_dir / f"gateway-{port}.log"
    full_env = {**os.environ, **env, **extra}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "messaging", "serve", "--port", str(port)],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    gw = Gateway(port, proc, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}:\n{gw.log()}")
        try:
            if httpx.get(f"{gw.url}/readyz", timeout=1).status_code == 200:
                return gw
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    gw.terminate()
    raise RuntimeError(f"gateway not ready in time:\n{gw.log()}")


class ClosedError(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


@dataclass
class Client:
    """A protocol client: requests with ids, events and ephemeral frames collected apart."""

    ws: Any
    encoding: str
    ready: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)
    _replies: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _reader: asyncio.Task[None] | None = None
    _event_signal: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None

    def encode(self, frame: Mapping[str, Any]) -> str | bytes:
        if self.encoding == "msgpack":
            return msgpack.packb(frame, use_bin_type=True)
        return json.dumps(frame)

    def decode(self, data: str | bytes) -> dict[str, Any]:
        if self.encoding == "msgpack":
            return msgpack.unpackb(data, raw=False)
        return json.loads(data)

    async def send_raw(self, frame: Mapping[str, Any]) -> None:
        await self.ws.send(self.encode(frame))

    async def request(self, frame: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        await self.send_raw({**frame, "id": rid})
        return await asyncio.wait_for(fut, timeout)

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                frame = self.decode(data)
                t = frame.get("t")
                if t in ("ok", "error") and frame.get("id") in self._replies:
                    fut = self._replies.pop(frame["id"])
                    if not fut.done():
                        fut.set_result(frame)
                elif t == "event":
                    self.events.append(frame)
                    self._event_signal.set()
                else:
                    self.others.append(frame)
                    self._event_signal.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            for fut in self._replies.values():
                if not fut.done():
                    fut.set_exception(ClosedError(self.close_code))
            self._event_signal.set()

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait until predicate(self) is true."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError("condition not met")
            if self._reader is not None and self._reader.done() and not predicate(self):
                raise ClosedError(self.close_code)
            self._event_signal.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event_signal.wait(), remaining)

    def seqs(self, conv: str) -> list[int]:
        return [e["seq"] for e in self.events if e["conv"] == conv]

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader


@contextlib.asynccontextmanager
async def connect(
    gw: Gateway,
    secret: str,
    user: str,
    *,
    encoding: str = "json",
    resume: dict[str, int] | None = None,
    **kwargs: Any,
) -> AsyncIterator[Client]:
    ws = await websockets.connect(
        gw.ws_url, subprotocols=[f"messaging.v1.{encoding}"], compression=None, **kwargs
    )
    client = Client(ws, encoding)
    hello: dict[str, Any] = {"t": "hello", "token": mint_token(secret, user)}
    if resume is not None:
        hello["resume"] = resume
    await client.send_raw(hello)
    client.ready = client.decode(await asyncio.wait_for(ws.recv(), 10))
    assert client.ready.get("t") == "ready", client.ready
    client.start()
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def import_school(gw: Gateway, secret: str, school: SchoolIds) -> dict[str, object]:
    """Import a generated school through POST /api/admin/roster with an admin token."""
    response = httpx.post(
        f"{gw.url}/api/admin/roster",
        json=roster_doc(school),
        headers={"Authorization": f"Bearer {mint_token(secret, 'admin')}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())
