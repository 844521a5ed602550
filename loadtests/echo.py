"""The baseline of the idle-memory bench: a bare uvicorn + Starlette WebSocket echo server.

    python -m loadtests.echo --port P

Same uvicorn settings as `messaging serve` (messaging/cli.py): the websockets-sansio protocol,
per-message deflate off, the same maximum frame size, no access log, uvloop when installed. The
handler accepts, then sends back every message it receives, until the client leaves: the least a
Starlette WebSocket endpoint can hold per connection (one task, its ASGI scope and queues).
"""

from __future__ import annotations

import argparse
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

MAX_FRAME_BYTES = 64 * 1024  # messaging.config.Limits.max_frame_bytes


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            elif message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


async def index(request: Request) -> Response:
    return PlainTextResponse("echo")


app = Starlette(routes=[Route("/", index), WebSocketRoute("/ws", echo)])


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m loadtests.echo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            ws="websockets-sansio",
            ws_max_size=MAX_FRAME_BYTES,
            ws_per_message_deflate=False,
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=True,
        )
    )
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
