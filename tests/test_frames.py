"""Client frame validation (PROTOCOL.md section 3) and server frame builders (section 4)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from messaging.errors import ErrorCode
from messaging.i18n import known, text
from messaging.protocol import frames
from messaging.protocol.frames import (
    Add,
    ClientFrame,
    Delete,
    Fetch,
    Hello,
    InvalidFrame,
    Leave,
    Lock,
    Moderate,
    Open,
    Read,
    Send,
    Typing,
    Unlock,
    parse,
)

# One valid frame per type with every field set, and what it parses to.
VALID: dict[str, tuple[dict[str, Any], ClientFrame]] = {
    "hello": (
        {"t": "hello", "token": "a.b.c", "resume": {"c-1": 4, "c-2": 0}},
        Hello(token="a.b.c", resume=(("c-1", 4), ("c-2", 0))),
    ),
    "open": (
        {"t": "open", "id": 1, "school": "erables", "members": ["p-1", "t-2"], "title": "Sortie"},
        Open(id=1, school="erables", members=("p-1", "t-2"), title="Sortie"),
    ),
    "add": (
        {"t": "add", "id": 2, "conv": "c-1", "users": ["p-3"]},
        Add(id=2, conv="c-1", users=("p-3",)),
    ),
    "leave": ({"t": "leave", "id": 3, "conv": "c-1"}, Leave(id=3, conv="c-1")),
    "send": (
        {
            "t": "send",
            "id": 4,
            "conv": "c-1",
            "cid": "k-1",
            "body": "Bonjour!",
            "attachments": ["a-1"],
            "reply_to": 2,
        },
        Send(id=4, conv="c-1", cid="k-1", body="Bonjour!", attachments=("a-1",), reply_to=2),
    ),
    "fetch": (
        {"t": "fetch", "id": 5, "conv": "c-1", "after": 0, "before": 9, "limit": 20},
        Fetch(id=5, conv="c-1", after=0, before=9, limit=20),
    ),
    "read": ({"t": "read", "id": 6, "conv": "c-1", "seq": 3}, Read(id=6, conv="c-1", seq=3)),
    "typing": ({"t": "typing", "conv": "c-1"}, Typing(conv="c-1")),
    "delete": ({"t": "delete", "id": 7, "conv": "c-1", "seq": 3}, Delete(id=7, conv="c-1", seq=3)),
    "lock": (
        {"t": "lock", "id": 8, "conv": "c-1", "reason": "Propos déplacés"},
        Lock(id=8, conv="c-1", reason="Propos déplacés"),
    ),
    "unlock": ({"t": "unlock", "id": 9, "conv": "c-1"}, Unlock(id=9, conv="c-1")),
    "moderate": (
        {"t": "moderate", "id": 10, "conv": "c-1", "seq": 3, "action": "remove", "reason": "x"},
        Moderate(id=10, conv="c-1", seq=3, action="remove", reason="x"),
    ),
}

REQUIRED: dict[str, tuple[str, ...]] = {
    "hello": (),
    "open": ("id", "school", "members"),
    "add": ("id", "conv", "users"),
    "leave": ("id", "conv"),
    "send": ("id", "conv", "cid"),
    "fetch": ("id", "conv"),
    "read": ("id", "conv", "seq"),
    "typing": ("conv",),
    "delete": ("id", "conv", "seq"),
    "lock": ("id", "conv"),
    "unlock": ("id", "conv"),
    "moderate": ("id", "conv", "seq", "action", "reason"),
}

INT_FIELDS = {"id", "seq", "after", "before", "limit", "reply_to"}
STR_FIELDS = {"token", "school", "conv", "cid", "body", "title", "reason"}
LIST_FIELDS = {"members", "users", "attachments"}
WRONG_TYPES: dict[str, list[Any]] = {
    "int": [True, False, 1.0, 1.5, "1", [1], {"a": 1}],
    "str": [1, True, 1.5, ["a"], {"a": "b"}, b"a"],
    "list": ["a", 1, True, {"a": "b"}],
    "resume": [["c-1", 1], "c-1", 1, True],
}


def _kind(field: str) -> str:
    if field in INT_FIELDS:
        return "int"
    if field in STR_FIELDS:
        return "str"
    if field in LIST_FIELDS:
        return "list"
    return field


def _with(kind: str, **changes: Any) -> dict[str, Any]:
    frame = dict(VALID[kind][0])
    for name, value in changes.items():
        if value is _ABSENT:
            frame.pop(name, None)
        else:
            frame[name] = value
    return frame


_ABSENT = object()


def _refused(frame: dict[str, Any]) -> InvalidFrame:
    with pytest.raises(InvalidFrame) as caught:
        parse(frame)
    exc = caught.value
    assert known(exc.reason), f"no text for reason {exc.reason!r}"
    for locale in ("fr", "en"):
        message = text(exc.reason, locale, **exc.params)
        assert "{" not in message, f"unfilled placeholder in {message!r}"
    return exc


def _request_id(frame: dict[str, Any]) -> int | None:
    rid = frame.get("id")
    valid = isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid <= 2**53
    return rid if valid else None


# --- valid frames --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_frame_of_each_type_parses(kind: str) -> None:
    """Each frame type with every field set parses to its dataclass."""
    frame, expected = VALID[kind]
    assert parse(frame) == expected


@pytest.mark.parametrize("kind", sorted(VALID))
def test_optional_fields_take_their_defaults(kind: str) -> None:
    """A frame with only its required fields parses, optional fields at their defaults."""
    minimal = {"t": kind} | {f: VALID[kind][0][f] for f in REQUIRED[kind]}
    if kind == "send":
        minimal["body"] = "x"
    parsed = parse(minimal)
    assert type(parsed) is type(VALID[kind][1])


@pytest.mark.parametrize("kind", sorted(VALID))
def test_null_optional_fields_count_as_absent(kind: str) -> None:
    """An optional field sent as null is its default, as if absent."""
    frame = VALID[kind][0]
    nulled = {k: (v if k in REQUIRED[kind] or k == "t" else None) for k, v in frame.items()}
    if kind == "send":
        nulled["body"] = "x"
    expected = {k: v for k, v in nulled.items() if v is not None}
    assert parse(nulled) == parse(expected)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_unknown_fields_are_ignored(kind: str) -> None:
    """Fields a type does not know are ignored for forward compatibility."""
    frame, expected = VALID[kind]
    assert parse(frame | {"future": {"x": [1]}, "v": 2}) == expected


def test_fetch_defaults() -> None:
    """A fetch with neither bound nor limit has limit 50 and no bounds."""
    assert parse({"t": "fetch", "id": 1, "conv": "c"}) == Fetch(id=1, conv="c", limit=50)


def test_hello_without_token_is_valid() -> None:
    """A hello may omit its token when the handshake carried Authorization: Bearer."""
    assert parse({"t": "hello"}) == Hello()
    assert Hello(resume=(("c", 3),)).resume_map() == {"c": 3}


def test_blank_title_is_no_title() -> None:
    """An empty or blank title is treated as no title."""
    parsed = parse(_with("open", title="  "))
    assert isinstance(parsed, Open)
    assert parsed.title is None


def test_send_with_attachments_may_have_an_empty_body() -> None:
    """A message of attachments only has an empty body."""
    assert parse(_with("send", body="")) == Send(
        id=4, conv="c-1", cid="k-1", body="", attachments=("a-1",), reply_to=2
    )
    assert parse(_with("send", body=_ABSENT)) == parse(_with("send", body=""))


def test_frames_are_frozen() -> None:
    """Parsed frames are immutable."""
    parsed = parse(VALID["read"][0])
    with pytest.raises(AttributeError):
        parsed.seq = 9  # type: ignore[misc, union-attr]


# --- missing and mistyped fields -----------------------------------------------------------------

MISSING = [(kind, field) for kind in sorted(REQUIRED) for field in REQUIRED[kind]]


@pytest.mark.parametrize(("kind", "field"), MISSING)
@pytest.mark.parametrize("how", ["absent", "null"])
def test_missing_required_field_is_invalid(kind: str, field: str, how: str) -> None:
    """A required field absent or null is field_missing, naming the field."""
    frame = _with(kind, **{field: _ABSENT if how == "absent" else None})
    exc = _refused(frame)
    assert (exc.code, exc.reason, exc.params) == (
        ErrorCode.INVALID,
        "field_missing",
        {"field": field},
    )
    assert exc.request_id == _request_id(frame)


MISTYPED = [
    (kind, field, value)
    for kind in sorted(VALID)
    for field in VALID[kind][0]
    if field not in ("t", "action")
    for value in WRONG_TYPES[_kind(field)]
]


@pytest.mark.parametrize(("kind", "field", "value"), MISTYPED)
def test_mistyped_field_is_invalid(kind: str, field: str, value: Any) -> None:
    """A field of the wrong type (booleans are not integers) is field_type, naming the field."""
    frame = _with(kind, **{field: value})
    exc = _refused(frame)
    assert (exc.code, exc.reason, exc.params) == (ErrorCode.INVALID, "field_type", {"field": field})
    assert exc.request_id == _request_id(frame)


@pytest.mark.parametrize("kind", ["open", "add", "send"])
def test_mistyped_list_item_names_its_index(kind: str) -> None:
    """A non-string item in an id list is field_type naming the item."""
    field = {"open": "members", "add": "users", "send": "attachments"}[kind]
    exc = _refused(_with(kind, **{field: ["ok", 2]}))
    assert (exc.reason, exc.params) == ("field_type", {"field": f"{field}[1]"})


@pytest.mark.parametrize("action", ["delete", "REMOVE", "", 1, True, ["remove"]])
def test_moderate_action_other_than_remove_is_invalid(action: Any) -> None:
    """Moderation knows one action, remove."""
    exc = _refused(_with("moderate", action=action))
    assert (exc.reason, exc.params) == ("field_invalid", {"field": "action"})


# --- the frame type ------------------------------------------------------------------------------


def test_unknown_type_is_invalid_and_echoes_the_id() -> None:
    """An unknown t is unknown_type, and the reply can still echo the request id."""
    exc = _refused({"t": "subscribe", "id": 12})
    assert (exc.code, exc.reason, exc.request_id) == (ErrorCode.INVALID, "unknown_type", 12)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [({}, "field_missing"), ({"t": None}, "field_missing"), ({"t": 3}, "field_type")],
)
def test_missing_or_mistyped_type_is_invalid(frame: dict[str, Any], reason: str) -> None:
    """A frame without a string t names the field t."""
    exc = _refused(frame)
    assert (exc.reason, exc.params) == (reason, {"field": "t"})


@pytest.mark.parametrize("kind", ["hello", "typing"])
def test_types_without_id_ignore_an_id(kind: str) -> None:
    """hello and typing take no id; one sent anyway is ignored."""
    frame, expected = VALID[kind]
    assert parse(frame | {"id": 99}) == expected


@pytest.mark.parametrize("rid", [-1, 2**53 + 1, True, 1.0, "1"])
def test_invalid_request_id_is_not_echoed(rid: Any) -> None:
    """An error reply echoes the id only when it was a valid request id."""
    exc = _refused(_with("read", id=rid))
    assert exc.request_id is None


def test_error_in_another_field_echoes_the_request_id() -> None:
    """A frame refused for its seq still reports its id for the reply."""
    exc = _refused(_with("read", id=41, seq=0))
    assert (exc.reason, exc.request_id) == ("field_range", 41)


# --- limits, at and past each bound --------------------------------------------------------------

ID_128 = "x" * 128
IDS = [f"u-{i}" for i in range(501)]
RESUME = {f"c-{i}": i for i in range(1001)}

TOO_LARGE_REASONS = {"body_too_long", "too_many_attachments", "list_too_long", "field_too_long"}
FIELDLESS_REASONS = {"body_too_long", "token_invalid"}

# (frame type, field, value accepted at the bound, value refused past it, reason)
LIMITS: list[tuple[str, str, Any, Any, str]] = [
    ("read", "id", 0, -1, "field_range"),
    ("read", "id", 2**53, 2**53 + 1, "field_range"),
    ("read", "seq", 1, 0, "field_range"),
    ("read", "seq", 2**53, 2**53 + 1, "field_range"),
    ("delete", "seq", 1, 0, "field_range"),
    ("moderate", "seq", 1, -5, "field_range"),
    ("fetch", "after", 0, -1, "field_range"),
    ("fetch", "before", 1, 0, "field_range"),
    ("fetch", "limit", 1, 0, "field_range"),
    ("fetch", "limit", 200, 201, "field_range"),
    ("send", "reply_to", 1, 0, "field_range"),
    ("read", "conv", ID_128, ID_128 + "x", "field_invalid"),
    ("read", "conv", "c", "", "field_empty"),
    ("read", "conv", "é-1 2", "c\x00", "field_invalid"),
    ("read", "conv", "c", "c\n", "field_invalid"),
    ("read", "conv", "c", "c\x7f", "field_invalid"),
    ("read", "conv", "c", "c\x85", "field_invalid"),
    ("open", "school", ID_128, ID_128 + "x", "field_invalid"),
    ("send", "cid", "k" * 64, "k" * 65, "field_invalid"),
    ("send", "cid", "k", "", "field_empty"),
    ("send", "body", "é" * 10_000, "é" * 10_001, "body_too_long"),
    ("send", "body", "a\n\tb", "a\x00b", "field_invalid"),
    ("send", "attachments", IDS[:10], IDS[:11], "too_many_attachments"),
    ("send", "attachments", [], ["a", "a"], "list_duplicate"),
    ("send", "attachments", ["a"], [""], "field_empty"),
    ("open", "members", IDS[:1], [], "field_empty"),
    ("open", "members", IDS[:500], IDS[:501], "list_too_long"),
    ("open", "members", ["a", "b"], ["a", "b", "a"], "list_duplicate"),
    ("open", "members", ["a"], ["a", "b\x01"], "field_invalid"),
    ("add", "users", IDS[:1], [], "field_empty"),
    ("add", "users", IDS[:500], IDS[:501], "list_too_long"),
    ("add", "users", ["a"], ["a", "a"], "list_duplicate"),
    ("open", "title", "t" * 200, "t" * 201, "field_too_long"),
    ("open", "title", "Sortie au musée", "a\nb", "field_invalid"),
    ("lock", "reason", "r" * 1000, "r" * 1001, "field_too_long"),
    ("lock", "reason", "a\nb", "a\x00b", "field_invalid"),
    ("moderate", "reason", "r" * 1000, "r" * 1001, "field_too_long"),
    ("moderate", "reason", "r", " ", "field_empty"),
    ("hello", "resume", dict(list(RESUME.items())[:1000]), RESUME, "list_too_long"),
    ("hello", "resume", {}, {"": 1}, "field_empty"),
    ("hello", "resume", {"c": 0}, {"c": -1}, "field_range"),
    ("hello", "resume", {"c": 2**53}, {"c": True}, "field_type"),
    ("hello", "token", "t" * 8192, "t" * 8193, "token_invalid"),
    ("hello", "token", "t", "", "token_invalid"),
]


def _as_parsed(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(value.items())
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize(
    ("kind", "field", "at_bound", "past_bound", "reason"),
    LIMITS,
    ids=[f"{kind}.{field}-{reason}-{i}" for i, (kind, field, _, _, reason) in enumerate(LIMITS)],
)
def test_limits_at_and_past_the_bound(
    kind: str, field: str, at_bound: Any, past_bound: Any, reason: str
) -> None:
    """A value exactly at a limit is accepted; one past it is refused with a precise reason."""
    assert getattr(parse(_with(kind, **{field: at_bound})), field) == _as_parsed(at_bound)
    frame = _with(kind, **{field: past_bound})
    exc = _refused(frame)
    expected_code = (
        ErrorCode.TOO_LARGE
        if reason in TOO_LARGE_REASONS
        else ErrorCode.UNAUTHENTICATED
        if reason == "token_invalid"
        else ErrorCode.INVALID
    )
    assert (exc.code, exc.reason) == (expected_code, reason)
    if reason not in FIELDLESS_REASONS:
        assert re.fullmatch(rf"{field}(\[\d+\])?", exc.params["field"])
    assert exc.request_id == _request_id(frame)


@pytest.mark.parametrize(
    "changes",
    [
        {"body": "", "attachments": []},
        {"body": "", "attachments": None},
        {"body": _ABSENT, "attachments": _ABSENT},
        {"body": " \n\t ", "attachments": _ABSENT},
    ],
)
def test_message_without_text_or_attachment_is_empty(changes: dict[str, Any]) -> None:
    """A send with a blank body and no attachment is empty_message."""
    exc = _refused(_with("send", **changes))
    assert (exc.code, exc.reason, exc.request_id) == (ErrorCode.INVALID, "empty_message", 4)


# --- server frames -------------------------------------------------------------------------------


def test_iso_utc_has_milliseconds_and_z() -> None:
    """Timestamps are ISO 8601 in UTC with milliseconds and a Z."""
    dt = datetime(2026, 1, 5, 14, 3, 7, 123456, tzinfo=UTC)
    assert frames.iso_utc(dt) == "2026-01-05T14:03:07.123Z"
    assert frames.iso_utc(dt.replace(microsecond=999_999)) == "2026-01-05T14:03:07.999Z"


def test_iso_utc_converts_other_zones_to_utc() -> None:
    """An aware datetime in another zone is converted to UTC."""
    montreal = timezone(timedelta(hours=-5))
    assert frames.iso_utc(datetime(2026, 1, 5, 9, 0, tzinfo=montreal)) == "2026-01-05T14:00:00.000Z"


def test_iso_utc_refuses_naive_datetimes() -> None:
    """A naive datetime has no known zone and is refused."""
    with pytest.raises(ValueError):
        frames.iso_utc(datetime(2026, 1, 5, 9, 0))


def test_ok_echoes_the_id_with_fields() -> None:
    """ok carries the request id and the result fields."""
    assert frames.ok(3, conv="c", created=True) == {
        "t": "ok",
        "id": 3,
        "conv": "c",
        "created": True,
    }
    with pytest.raises(ValueError):
        frames.ok(3, t="x")


def test_error_has_code_and_message_and_optional_id() -> None:
    """error carries the code's value and the message, and id only when known."""
    assert frames.error(4, ErrorCode.LOCKED, "Verrouillée") == {
        "t": "error",
        "code": "locked",
        "message": "Verrouillée",
        "id": 4,
    }
    assert "id" not in frames.error(None, ErrorCode.INVALID, "x")


def test_event_frame_has_core_keys_and_kind_fields() -> None:
    """An event carries conv, seq, ts, kind, actor and the kind's own fields."""
    ts = datetime(2026, 1, 5, 14, 3, 7, tzinfo=UTC)
    event = frames.event_frame("c", 5, ts, "message", "t-1", {"body": "Allo", "cid": "k"})
    assert event == {
        "t": "event",
        "conv": "c",
        "seq": 5,
        "ts": "2026-01-05T14:03:07.000Z",
        "kind": "message",
        "actor": "t-1",
        "body": "Allo",
        "cid": "k",
    }
    assert frames.event_frame("c", 1, "2026-01-05T14:03:07.000Z", "unlocked", None, {})["ts"] == (
        "2026-01-05T14:03:07.000Z"
    )


def test_event_frame_refuses_fields_that_shadow_core_keys() -> None:
    """A kind field named like a core key is a programming error."""
    with pytest.raises(ValueError):
        frames.event_frame("c", 5, "2026-01-05T00:00:00.000Z", "message", "u", {"seq": 9})


def test_ephemeral_frames() -> None:
    """receipt, typing and resync have their documented fields."""
    assert frames.receipt("c", "u", 4) == {"t": "receipt", "conv": "c", "user": "u", "seq": 4}
    assert frames.typing("c", "u") == {"t": "typing", "conv": "c", "user": "u"}
    assert frames.resync() == {"t": "resync"}
    assert frames.resync("c") == {"t": "resync", "conv": "c"}


def test_ready_lists_user_conversations_and_server_time() -> None:
    """ready carries the user, the conversations and the server time."""
    now = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
    user = {"id": "u", "name": "Léa", "kind": "parent", "locale": "fr"}
    frame = frames.ready(user, [{"conv": "c", "last_seq": 3}], now)
    assert frame == {
        "t": "ready",
        "user": user,
        "conversations": [{"conv": "c", "last_seq": 3}],
        "server_time": "2026-01-05T14:00:00.000Z",
    }
