"""Structured logging: JSON lines in production, readable lines on a terminal.

The connection, user and conversation are bound with structlog's contextvars by the gateway. As a
last line of defence, `drop_private` removes any field that could carry what people wrote or a
credential, whoever logged it: no message body, attachment content or token ever reaches a log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

PRIVATE_KEYS = frozenset(
    {"body", "body_en", "token", "authorization", "password", "secret", "content", "text"}
)


def drop_private(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in PRIVATE_KEYS.intersection(event_dict):
        event_dict[key] = "[withheld]"
    return event_dict


def configure(fmt: str = "auto", level: int = logging.INFO) -> None:
    """Set up structlog and route the standard library's loggers (uvicorn, asyncpg) through it."""
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        drop_private,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info if json_output else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log and its WebSocket handshake lines print query strings, where a
    # misbehaving client may have put a token; the gateway logs connections itself.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("uvicorn.error").addFilter(_without_handshake_lines)


def _without_handshake_lines(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith('%s - "WebSocket')
