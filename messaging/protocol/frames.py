"""Client frames as typed values (PROTOCOL.md section 3), and the server frames (section 4).

`parse()` turns one decoded map into one frozen dataclass, or raises `InvalidFrame`: an error code,
a reason key of `messaging.i18n` with its params (usually the field at fault), and the frame's
`id` when that was a valid request id, so that the error reply can echo it.

Validation is a table (`_SPECS`): each frame type lists its fields, each field a checker, and
`parse` walks the table. Rules shared by every type:

- A field that this server does not know is ignored (forward compatibility: a newer client may
  send more than this server reads). An unknown `t` is refused with `unknown_type`, since the
  client waits for a reply that this server cannot give.
- A field sent as `null` counts as absent: optional fields take their default, required fields
  are `field_missing`.
- Integers are JSON/msgpack integers, never booleans or floats, in [0, 2**53] (safe in
  JavaScript and in a Postgres bigint).
- Identifiers are non-empty strings of at most 128 characters without control characters.
- Lengths count Unicode code points (Python `len`), not UTF-16 units nor bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias

from messaging.errors import ErrorCode, MessagingError

MAX_INT: Final = 2**53
MAX_ID_CHARS: Final = 128
MAX_CID_CHARS: Final = 64
MAX_TOKEN_CHARS: Final = 8_192
MAX_BODY_CHARS: Final = 10_000
MAX_ATTACHMENTS: Final = 10
MAX_MEMBERS: Final = 500
MAX_TITLE_CHARS: Final = 200
MAX_REASON_CHARS: Final = 1_000
MAX_RESUME: Final = 1_000
DEFAULT_FETCH_LIMIT: Final = 50
MAX_FETCH_LIMIT: Final = 200


class InvalidFrame(MessagingError):
    """A client frame that breaks PROTOCOL.md section 3; the connection stays open.

    `request_id` is the frame's `id` when it was a valid request id (else None), for the reply.
    """

    def __init__(
        self,
        reason: str = "invalid_frame",
        *,
        code: ErrorCode = ErrorCode.INVALID,
        request_id: int | None = None,
        **params: Any,
    ) -> None:
        super().__init__(code, reason, **params)
        self.request_id = request_id


# --- client frames -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame; `token` may be None when the handshake carried `Authorization: Bearer`."""

    token: str | None = None
    resume: tuple[tuple[str, int], ...] = ()

    def resume_map(self) -> dict[str, int]:
        """`resume` as {conversation id: last seq seen}."""
        return dict(self.resume)


@dataclass(frozen=True, slots=True)
class Open:
    id: int
    school: str
    members: tuple[str, ...]
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Add:
    id: int
    conv: str
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Leave:
    id: int
    conv: str


@dataclass(frozen=True, slots=True)
class Send:
    id: int
    conv: str
    cid: str
    body: str = ""
    attachments: tuple[str, ...] = ()
    reply_to: int | None = None


@dataclass(frozen=True, slots=True)
class Fetch:
    id: int
    conv: str
    after: int | None = None
    before: int | None = None
    limit: int = DEFAULT_FETCH_LIMIT


@dataclass(frozen=True, slots=True)
class Read:
    id: int
    conv: str
    seq: int


@dataclass(frozen=True, slots=True)
class Typing:
    conv: str


@dataclass(frozen=True, slots=True)
class Delete:
    id: int
    conv: str
    seq: int


@dataclass(frozen=True, slots=True)
class Lock:
    id: int
    conv: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Unlock:
    id: int
    conv: str


@dataclass(frozen=True, slots=True)
class Moderate:
    id: int
    conv: str
    seq: int
    action: Literal["remove"]
    reason: str


ClientFrame: TypeAlias = (
    Hello | Open | Add | Leave | Send | Fetch | Read | Typing | Delete | Lock | Unlock | Moderate
)

# --- field checkers ------------------------------------------------------------------------------
# A checker takes the raw value (never None) and the field's name, returns the typed value or
# raises InvalidFrame without request id (parse() adds it).

Checker: TypeAlias = Callable[[object, str], object]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _int_in(lo: int, hi: int = MAX_INT) -> Checker:
    def check(value: object, name: str) -> int:
        if type(value) is not int:  # bool is a subclass of int: refused on purpose
            raise InvalidFrame("field_type", field=name)
        if not lo <= value <= hi:
            raise InvalidFrame("field_range", field=name, min=lo, max=hi)
        return value

    return check


def _ident_value(value: object, name: str, max_chars: int = MAX_ID_CHARS) -> str:
    if type(value) is not str:
        raise InvalidFrame("field_type", field=name)
    if not value:
        raise InvalidFrame("field_empty", field=name)
    if len(value) > max_chars or _CONTROL.search(value):
        raise InvalidFrame("field_invalid", field=name)
    return value


def _ident(max_chars: int = MAX_ID_CHARS) -> Checker:
    def check(value: object, name: str) -> str:
        return _ident_value(value, name, max_chars)

    return check


def _ident_list(min_items: int, max_items: int, too_many: str) -> Checker:
    """A list of unique identifiers; more than `max_items` is `too_many` (code too_large)."""

    def check(value: object, name: str) -> tuple[str, ...]:
        if type(value) is not list and type(value) is not tuple:
            raise InvalidFrame("field_type", field=name)
        if len(value) > max_items:
            raise InvalidFrame(too_many, code=ErrorCode.TOO_LARGE, field=name, max=max_items)
        if len(value) < min_items:
            raise InvalidFrame("field_empty", field=name)
        items = tuple(_ident_value(v, f"{name}[{i}]") for i, v in enumerate(value))
        if len(set(items)) != len(items):
            raise InvalidFrame("list_duplicate", field=name)
        return items

    return check


def _text(max_chars: int, *, single_line: bool = False, blank_ok: bool = True) -> Checker:
    """Free text; NUL is refused everywhere (Postgres text cannot hold it)."""

    def check(value: object, name: str) -> str:
        if type(value) is not str:
            raise InvalidFrame("field_type", field=name)
        if len(value) > max_chars:
            raise InvalidFrame(
                "field_too_long", code=ErrorCode.TOO_LARGE, field=name, max=max_chars
            )
        if _CONTROL.search(value) is not None if single_line else "\x00" in value:
            raise InvalidFrame("field_invalid", field=name)
        if not blank_ok and not value.strip():
            raise InvalidFrame("field_empty", field=name)
        return value

    return check


_title_text = _text(MAX_TITLE_CHARS, single_line=True)


def _title(value: object, name: str) -> str | None:
    title = str(_title_text(value, name))
    return title if title.strip() else None  # a blank title is no title


def _body(value: object, name: str) -> str:
    if type(value) is not str:
        raise InvalidFrame("field_type", field=name)
    if len(value) > MAX_BODY_CHARS:
        raise InvalidFrame("body_too_long", code=ErrorCode.TOO_LARGE, max=MAX_BODY_CHARS)
    if "\x00" in value:
        raise InvalidFrame("field_invalid", field=name)
    return value


def _token(value: object, name: str) -> str:
    if type(value) is not str:
        raise InvalidFrame("field_type", field=name)
    if not value or len(value) > MAX_TOKEN_CHARS:
        raise InvalidFrame("token_invalid", code=ErrorCode.UNAUTHENTICATED)
    return value


def _resume(value: object, name: str) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, Mapping):
        raise InvalidFrame("field_type", field=name)
    if len(value) > MAX_RESUME:
        raise InvalidFrame("list_too_long", code=ErrorCode.TOO_LARGE, field=name, max=MAX_RESUME)
    pairs: list[tuple[str, int]] = []
    for key, seq in value.items():
        conv = _ident_value(key, name)
        if type(seq) is not int:
            raise InvalidFrame("field_type", field=name)
        if not 0 <= seq <= MAX_INT:
            raise InvalidFrame("field_range", field=name, min=0, max=MAX_INT)
        pairs.append((conv, seq))
    return tuple(pairs)


def _action(value: object, name: str) -> Literal["remove"]:
    if value != "remove":
        raise InvalidFrame("field_invalid", field=name)
    return "remove"


# --- the table -----------------------------------------------------------------------------------

_REQUIRED: Final = object()


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    check: Checker
    default: object = _REQUIRED


_ID = _Field("id", _int_in(0))
_CONV = _Field("conv", _ident())
_SEQ = _Field("seq", _int_in(1))

_SPECS: Final[dict[str, tuple[Callable[..., ClientFrame], tuple[_Field, ...]]]] = {
    "hello": (Hello, (_Field("token", _token, None), _Field("resume", _resume, ()))),
    "open": (
        Open,
        (
            _ID,
            _Field("school", _ident()),
            _Field("members", _ident_list(1, MAX_MEMBERS, "list_too_long")),
            _Field("title", _title, None),
        ),
    ),
    "add": (Add, (_ID, _CONV, _Field("users", _ident_list(1, MAX_MEMBERS, "list_too_long")))),
    "leave": (Leave, (_ID, _CONV)),
    "send": (
        Send,
        (
            _ID,
            _CONV,
            _Field("cid", _ident(MAX_CID_CHARS)),
            _Field("body", _body, ""),
            _Field("attachments", _ident_list(0, MAX_ATTACHMENTS, "too_many_attachments"), ()),
            _Field("reply_to", _int_in(1), None),
        ),
    ),
    "fetch": (
        Fetch,
        (
            _ID,
            _CONV,
            _Field("after", _int_in(0), None),
            _Field("before", _int_in(1), None),
            _Field("limit", _int_in(1, MAX_FETCH_LIMIT), DEFAULT_FETCH_LIMIT),
        ),
    ),
    "read": (Read, (_ID, _CONV, _SEQ)),
    "typing": (Typing, (_CONV,)),
    "delete": (Delete, (_ID, _CONV, _SEQ)),
    "lock": (Lock, (_ID, _CONV, _Field("reason", _text(MAX_REASON_CHARS), None))),
    "unlock": (Unlock, (_ID, _CONV)),
    "moderate": (
        Moderate,
        (
            _ID,
            _CONV,
            _SEQ,
            _Field("action", _action),
            _Field("reason", _text(MAX_REASON_CHARS, blank_ok=False)),
        ),
    ),
}

FRAME_TYPES: Final = frozenset(_SPECS)


def _check_send(frame: ClientFrame) -> None:
    if isinstance(frame, Send) and not frame.attachments and not frame.body.strip():
        raise InvalidFrame("empty_message")


_AFTER: Final[dict[str, Callable[[ClientFrame], None]]] = {"send": _check_send}


def request_id_of(frame: Mapping[str, Any]) -> int | None:
    """The frame's `id` if it is a valid request id, else None."""
    rid = frame.get("id")
    return rid if type(rid) is int and 0 <= rid <= MAX_INT else None


def parse(frame: Mapping[str, Any]) -> ClientFrame:
    """Validate one decoded client frame and return it typed; raise `InvalidFrame` otherwise."""
    request_id = request_id_of(frame)
    try:
        kind = frame.get("t")
        if kind is None:
            raise InvalidFrame("field_missing", field="t")
        if type(kind) is not str:
            raise InvalidFrame("field_type", field="t")
        spec = _SPECS.get(kind)
        if spec is None:
            raise InvalidFrame("unknown_type")
        cls, fields = spec
        values: dict[str, object] = {}
        for f in fields:
            raw = frame.get(f.name)
            if raw is None:
                if f.default is _REQUIRED:
                    raise InvalidFrame("field_missing", field=f.name)
                values[f.name] = f.default
            else:
                values[f.name] = f.check(raw, f.name)
        parsed = cls(**values)
        after = _AFTER.get(kind)
        if after is not None:
            after(parsed)
        return parsed
    except InvalidFrame as exc:
        exc.request_id = request_id
        raise


# --- server frames -------------------------------------------------------------------------------


def iso_utc(dt: datetime) -> str:
    """`dt` as ISO 8601 in UTC with millisecond precision and a `Z`; naive datetimes refused."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive datetime: its time zone is unknown")
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stamp(ts: datetime | str) -> str:
    return ts if isinstance(ts, str) else iso_utc(ts)


def ok(request_id: int, **fields: Any) -> dict[str, Any]:
    """Success reply to request `request_id`, with the request's own result fields."""
    if "t" in fields:
        raise ValueError("'t' is reserved")
    return {"t": "ok", "id": request_id, **fields}


def error(request_id: int | None, code: ErrorCode, message: str) -> dict[str, Any]:
    """Failure reply; `id` is left out when the request had no readable id."""
    frame: dict[str, Any] = {"t": "error", "code": code.value, "message": message}
    if request_id is not None:
        frame["id"] = request_id
    return frame


def ready(
    user: Mapping[str, Any],
    conversations: Sequence[Mapping[str, Any]],
    server_time: datetime,
) -> dict[str, Any]:
    """Reply to `hello`: who the user is, their conversations, and the server's clock."""
    return {
        "t": "ready",
        "user": dict(user),
        "conversations": [dict(c) for c in conversations],
        "server_time": iso_utc(server_time),
    }


_EVENT_KEYS: Final = frozenset({"t", "conv", "seq", "ts", "kind", "actor"})


def event_frame(
    conv: str,
    seq: int,
    ts: datetime | str,
    kind: str,
    actor: str | None,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """An appended event; `fields` are the kind's own (PROTOCOL.md section 4), never core keys."""
    if not _EVENT_KEYS.isdisjoint(fields):
        raise ValueError(
            f"fields overlap the event's core keys: {sorted(_EVENT_KEYS & set(fields))}"
        )
    return {
        "t": "event",
        "conv": conv,
        "seq": seq,
        "ts": _stamp(ts),
        "kind": kind,
        "actor": actor,
        **fields,
    }


def receipt(conv: str, user: str, seq: int) -> dict[str, Any]:
    """`user` has read `conv` up to `seq` (ephemeral)."""
    return {"t": "receipt", "conv": conv, "user": user, "seq": seq}


def typing(conv: str, user: str) -> dict[str, Any]:
    """`user` is typing in `conv` (ephemeral)."""
    return {"t": "typing", "conv": conv, "user": user}


def resync(conv: str | None = None) -> dict[str, Any]:
    """Events may have been missed: re-fetch `conv`, or every conversation when None."""
    return {"t": "resync"} if conv is None else {"t": "resync", "conv": conv}
