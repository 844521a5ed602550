"""Errors of the messaging service.

Every failure that reaches a client is one of two things:

    MessagingError            a request failed; the client gets an `error` frame or an HTTP error
    |                         with a machine-readable `code` (PROTOCOL.md section 5) and a message
    |                         in its own language. The connection stays open.
    +-- RosterInvalid         a roster document was refused whole, with every problem listed.

    ProtocolViolation         the client broke the wire contract badly enough that the connection
                              is closed with `close_code` (1008, 1009, 4001, 4029 ...).

Codes and close codes are closed sets: `ErrorCode` and `CloseCode`.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID = "invalid"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    LOCKED = "locked"
    NO_STAFF = "no_staff"
    FEATURE_DISABLED = "feature_disabled"
    TOO_LARGE = "too_large"
    UNSUPPORTED_TYPE = "unsupported_type"
    RATE_LIMITED = "rate_limited"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.FEATURE_DISABLED: 403,
    ErrorCode.NO_STAFF: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.LOCKED: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


class CloseCode(IntEnum):
    NORMAL = 1000
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    RESTART = 1012
    OVERLOADED = 1013
    UNAUTHENTICATED = 4001
    REVOKED = 4003
    SLOW_CONSUMER = 4008
    RATE_LIMITED = 4029


class MessagingError(Exception):
    """A request that failed with a protocol error code.

    `reason` is a key of `messaging.i18n` (defaults to the code itself) so that the text sent to
    the client is in its language; `params` fill the text's placeholders.
    """

    def __init__(self, code: ErrorCode, reason: str | None = None, **params: Any) -> None:
        self.code = code
        self.reason = reason or code.value
        self.params = params
        super().__init__(f"{code.value}: {self.reason}")


class RosterInvalid(MessagingError):
    """A roster document refused whole; `problems` lists every (path, message) found."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(ErrorCode.INVALID, "roster_invalid", count=len(problems))
        self.problems = problems


class ProtocolViolation(Exception):
    """The connection must be closed with `close_code`; `reason` is short and never user data."""

    def __init__(self, close_code: CloseCode, reason: str) -> None:
        self.close_code = close_code
        self.reason = reason
        super().__init__(f"{int(close_code)}: {reason}")
