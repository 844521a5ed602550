"""Bad input on an authenticated WebSocket: each gets its error code, nothing else suffers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import msgpack
import pytest
import pytest_asyncio
import websockets

from messaging.gateway.auth import mint_token
from tests.e2e.conftest import import_school
from tests.rosters import SchoolIds, make_school
from tests.servers import Client, Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")

RID = 7_000  # the id of bad requests; the Client numbers its own requests from 1


@dataclass(frozen=True)
class AsSent:
    """An out-of-range integer id: the error may leave it out or echo it as sent."""

    value: int


LIMIT = 64 * 1024


@dataclass(frozen=True)
class Setup:
    """A school where the parent and the teacher share `conv`, which holds a few messages;
    `foreign` are conversations the parent is no member of (same school, other school)."""

    school: SchoolIds
    conv: str
    foreign: tuple[str, ...]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def setup(gateways: tuple[Gateway, Gateway], secret: str) -> Setup:
    s = make_school()
    import_school(gateways[0], secret, s)
    gw = gateways[0]
    async with connect(gw, secret, s.teacher) as teacher:
        conv = (await teacher.request({"t": "open", "school": s.school, "members": [s.parent]}))[
            "conv"
        ]
        for i in range(3):
            sent = await teacher.request({"t": "send", "conv": conv, "cid": f"m{i}", "body": "x"})
            assert sent["t"] == "ok", sent
        other = await teacher.request({"t": "open", "school": s.school, "members": [s.parent_en]})
        assert other["t"] == "ok", other
        await teacher.request({"t": "send", "conv": other["conv"], "cid": "p", "body": "privé"})
    async with connect(gw, secret, s.other_principal) as principal:
        far = await principal.request(
            {"t": "open", "school": s.other_school, "members": [s.other_parent]}
        )
        assert far["t"] == "ok", far
    return Setup(s, conv, (other["conv"], far["conv"]))


def _errors(client: Client) -> list[dict[str, Any]]:
    return [f for f in client.others if f.get("t") == "error"]


async def _fetch_all(client: Client, conv: str) -> list[dict[str, Any]]:
    reply = await client.request({"t": "fetch", "conv": conv, "limit": 200})
    assert reply["t"] == "ok", reply
    return list(reply["events"])


@contextlib.asynccontextmanager
async def _scene(
    gateways: tuple[Gateway, Gateway], secret: str, setup: Setup, encoding: str = "json"
) -> AsyncIterator[tuple[Client, Client]]:
    """The parent (who misbehaves) next to the teacher on the same gateway; on exit, checks
    that the teacher was unaffected and that the stored conversation is unchanged."""
    gw = gateways[0]
    s = setup.school
    async with connect(gw, secret, s.teacher) as bystander:
        before = await _fetch_all(bystander, setup.conv)
        async with connect(gw, secret, s.parent, encoding=encoding) as client:
            yield client, bystander
        assert _errors(bystander) == []
        assert bystander.close_code is None
        assert await _fetch_all(bystander, setup.conv) == before
        ping = await bystander.request({"t": "read", "conv": setup.conv, "seq": 1})
        assert ping["t"] == "ok", ping


async def _expect_error(
    client: Client, data: str | bytes, code: str, rid: int | AsSent | None
) -> None:
    """Send raw `data`; expect one error frame with `code` and `id` == rid (None: no id)."""
    seen = len(_errors(client))
    await client.ws.send(data)
    await client.wait_for(lambda c: len(_errors(c)) > seen)
    error = _errors(client)[seen]
    assert error["code"] == code, error
    if isinstance(rid, AsSent):
        assert error.get("id", rid.value) == rid.value, error
    elif rid is None:
        assert "id" not in error, error
    else:
        assert error.get("id") == rid, error
    assert isinstance(error["message"], str) and error["message"]


async def _still_answers(client: Client, conv: str) -> None:
    assert client.close_code is None
    reply = await client.request({"t": "fetch", "conv": conv, "limit": 1})
    assert reply["t"] == "ok", reply
    assert [e["seq"] for e in reply["events"]] == [4]


def _j(frame: Any) -> str:
    return json.dumps(frame)


# (name, builder(conv) -> text frame, expected code, expected id)
JSON_CASES: list[tuple[str, Callable[[str], str], str, int | AsSent | None]] = [
    ("list", lambda c: "[1, 2, 3]", "invalid", None),
    ("number", lambda c: "42", "invalid", None),
    ("string", lambda c: '"fetch"', "invalid", None),
    ("null", lambda c: "null", "invalid", None),
    ("empty_map", lambda c: "{}", "invalid", None),
    ("unknown_type", lambda c: _j({"t": "explode", "id": RID, "conv": c}), "invalid", RID),
    ("type_not_string", lambda c: _j({"t": 3, "id": RID}), "invalid", RID),
    ("type_missing", lambda c: _j({"id": RID, "conv": c}), "invalid", RID),
    ("conv_missing", lambda c: _j({"t": "fetch", "id": RID}), "invalid", RID),
    ("conv_number", lambda c: _j({"t": "fetch", "id": RID, "conv": 12}), "invalid", RID),
    ("conv_empty", lambda c: _j({"t": "fetch", "id": RID, "conv": ""}), "invalid", RID),
    ("conv_list", lambda c: _j({"t": "fetch", "id": RID, "conv": [c]}), "invalid", RID),
    (
        "limit_string",
        lambda c: _j({"t": "fetch", "id": RID, "conv": c, "limit": "5"}),
        "invalid",
        RID,
    ),
    ("limit_201", lambda c: _j({"t": "fetch", "id": RID, "conv": c, "limit": 201}), "invalid", RID),
    ("limit_zero", lambda c: _j({"t": "fetch", "id": RID, "conv": c, "limit": 0}), "invalid", RID),
    (
        "after_float",
        lambda c: _j({"t": "fetch", "id": RID, "conv": c, "after": 1.5}),
        "invalid",
        RID,
    ),
    (
        "after_bool",
        lambda c: _j({"t": "fetch", "id": RID, "conv": c, "after": True}),
        "invalid",
        RID,
    ),
    ("id_string", lambda c: _j({"t": "fetch", "id": str(RID), "conv": c}), "invalid", None),
    ("id_bool", lambda c: _j({"t": "fetch", "id": True, "conv": c}), "invalid", None),
    ("id_negative", lambda c: _j({"t": "fetch", "id": -1, "conv": c}), "invalid", AsSent(-1)),
    ("id_float", lambda c: _j({"t": "fetch", "id": 7.5, "conv": c}), "invalid", None),
    ("id_missing", lambda c: _j({"t": "fetch", "conv": c}), "invalid", None),
    (
        "body_number",
        lambda c: _j({"t": "send", "id": RID, "conv": c, "cid": "b", "body": 5}),
        "invalid",
        RID,
    ),
    (
        "body_map",
        lambda c: _j({"t": "send", "id": RID, "conv": c, "cid": "b", "body": {}}),
        "invalid",
        RID,
    ),
    (
        "body_blank",
        lambda c: _j({"t": "send", "id": RID, "conv": c, "cid": "b", "body": "  "}),
        "invalid",
        RID,
    ),
    (
        "body_nul",
        lambda c: _j({"t": "send", "id": RID, "conv": c, "cid": "b", "body": "a\x00"}),
        "invalid",
        RID,
    ),
    ("cid_missing", lambda c: _j({"t": "send", "id": RID, "conv": c, "body": "x"}), "invalid", RID),
    (
        "cid_65_chars",
        lambda c: _j({"t": "send", "id": RID, "conv": c, "cid": "c" * 65, "body": "x"}),
        "invalid",
        RID,
    ),
    (
        "reply_to_string",
        lambda c: _j({"t": "send", "id": RID, "conv": c, "cid": "r", "body": "x", "reply_to": "2"}),
        "invalid",
        RID,
    ),
    (
        "attachments_string",
        lambda c: _j(
            {"t": "send", "id": RID, "conv": c, "cid": "a", "body": "x", "attachments": "a1"}
        ),
        "invalid",
        RID,
    ),
    ("seq_missing", lambda c: _j({"t": "read", "id": RID, "conv": c}), "invalid", RID),
    ("seq_zero", lambda c: _j({"t": "delete", "id": RID, "conv": c, "seq": 0}), "invalid", RID),
    (
        "members_string",
        lambda c: _j({"t": "open", "id": RID, "school": "s", "members": "x"}),
        "invalid",
        RID,
    ),
    (
        "members_empty",
        lambda c: _j({"t": "open", "id": RID, "school": "s", "members": []}),
        "invalid",
        RID,
    ),
    (
        "moderate_action",
        lambda c: _j(
            {"t": "moderate", "id": RID, "conv": c, "seq": 2, "action": "erase", "reason": "x"}
        ),
        "invalid",
        RID,
    ),
    ("hello_again", lambda c: _j({"t": "hello", "token": "x.y.z"}), "invalid", None),
    ("invalid_json", lambda c: '{"t": "fetch", "id": 7000, "conv": ', "invalid", None),
    ("single_quotes", lambda c: "{'t': 'fetch'}", "invalid", None),
    ("nan", lambda c: '{"t": "fetch", "id": 7000, "conv": "c", "after": NaN}', "invalid", None),
    (
        "trailing_garbage",
        lambda c: _j({"t": "fetch", "id": RID, "conv": c}) + " trailing",
        "invalid",
        None,
    ),
    ("two_values", lambda c: _j({"t": "fetch", "id": RID, "conv": c}) * 2, "invalid", None),
    (
        "very_deep",
        lambda c: '{"t": "fetch", "id": 7000, "x": ' + "[" * 5000 + "]" * 5000 + "}",
        "invalid",
        None,
    ),
    ("empty_text", lambda c: "", "invalid", None),
]


@pytest.mark.parametrize(
    ("build", "code", "rid"),
    [case[1:] for case in JSON_CASES],
    ids=[case[0] for case in JSON_CASES],
)
async def test_bad_json_frame_gets_its_error_and_the_connection_stays(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    setup: Setup,
    build: Callable[[str], str],
    code: str,
    rid: int | AsSent | None,
) -> None:
    """A malformed JSON frame is answered with its error code; the connection keeps working."""
    async with _scene(gateways, secret, setup) as (client, _):
        await _expect_error(client, build(setup.conv), code, rid)
        await _still_answers(client, setup.conv)


async def test_deeply_nested_value_gets_invalid_echoing_the_id(
    gateways: tuple[Gateway, Gateway], secret: str, setup: Setup
) -> None:
    """A map nested deeper than allowed is `invalid`, and the error echoes the valid `id`."""
    deep: Any = "leaf"
    for _ in range(40):
        deep = {"k": deep}
    async with _scene(gateways, secret, setup) as (client, _):
        frame = {"t": "fetch", "id": RID, "conv": setup.conv, "extra": deep}
        await _expect_error(client, json.dumps(frame), "invalid", RID)
        await _still_answers(client, setup.conv)


async def test_deeply_nested_value_gets_invalid(
    gateways: tuple[Gateway, Gateway], secret: str, setup: Setup
) -> None:
    """Maps and lists nested 40 deep are `invalid` (JSON and msgpack); the connection stays."""
    deep: Any = "leaf"
    for i in range(40):
        deep = {"k": deep} if i % 2 else [deep]
    frame = {"t": "fetch", "id": RID, "conv": setup.conv, "extra": deep}
    async with _scene(gateways, secret, setup) as (client, _):
        seen = len(_errors(client))
        await client.ws.send(json.dumps(frame))
        await client.wait_for(lambda c: len(_errors(c)) > seen)
        assert _errors(client)[seen]["code"] == "invalid"
        await _still_answers(client, setup.conv)
    async with _scene(gateways, secret, setup, encoding="msgpack") as (client, _):
        seen = len(_errors(client))
        await client.ws.send(msgpack.packb(frame, use_bin_type=True))
        await client.wait_for(lambda c: len(_errors(c)) > seen)
        assert _errors(client)[seen]["code"] == "invalid"
        await _still_answers(client, setup.conv)


def _p(frame: Any) -> bytes:
    return msgpack.packb(frame, use_bin_type=True)


def _fetch(conv: str, **extra: Any) -> dict[str, Any]:
    return {"t": "fetch", "id": RID, "conv": conv, **extra}


MSGPACK_CASES: list[tuple[str, Callable[[str], bytes], str, int | AsSent | None]] = [
    ("never_used_byte", lambda c: b"\xc1", "invalid", None),
    ("truncated", lambda c: _p(_fetch(c))[:-3], "invalid", None),
    ("trailing_garbage", lambda c: _p(_fetch(c)) + b"\x00", "invalid", None),
    ("two_maps", lambda c: _p(_fetch(c)) * 2, "invalid", None),
    ("array", lambda c: _p([1, 2, 3]), "invalid", None),
    ("integer", lambda c: _p(42), "invalid", None),
    ("string", lambda c: _p("fetch"), "invalid", None),
    ("nil", lambda c: _p(None), "invalid", None),
    ("extension_type", lambda c: _p(_fetch(c, x=msgpack.ExtType(5, b"abc"))), "invalid", None),
    (
        "timestamp_extension",
        lambda c: msgpack.packb(_fetch(c, x=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)), datetime=True),
        "invalid",
        None,
    ),
    ("integer_key", lambda c: _p({"t": "fetch", "id": RID, "conv": c, 1: "x"}), "invalid", None),
    ("nested_integer_key", lambda c: _p(_fetch(c, x={2: "y"})), "invalid", None),
    ("binary_conv", lambda c: _p(_fetch(c.encode())), "invalid", RID),
    ("binary_type", lambda c: _p({"t": b"fetch", "id": RID, "conv": c}), "invalid", RID),
    ("float_id", lambda c: _p({"t": "fetch", "id": 7000.0, "conv": c}), "invalid", None),
    ("huge_id", lambda c: _p({"t": "fetch", "id": 2**60, "conv": c}), "invalid", AsSent(2**60)),
    ("unknown_type", lambda c: _p({"t": "explode", "id": RID}), "invalid", RID),
    ("very_deep", lambda c: b"\x91" * 5000 + b"\xc0", "invalid", None),
    ("claimed_huge_map", lambda c: b"\xdf\xff\xff\xff\xff", "invalid", None),
    ("invalid_utf8", lambda c: b"\x81\xa1t\xa2\xff\xfe", "invalid", None),
]


@pytest.mark.parametrize(
    ("build", "code", "rid"),
    [case[1:] for case in MSGPACK_CASES],
    ids=[case[0] for case in MSGPACK_CASES],
)
async def test_bad_msgpack_frame_gets_its_error_and_the_connection_stays(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    setup: Setup,
    build: Callable[[str], bytes],
    code: str,
    rid: int | AsSent | None,
) -> None:
    """A malformed msgpack frame is answered with its error code; the connection keeps working."""
    async with _scene(gateways, secret, setup, encoding="msgpack") as (client, _):
        assert client.ws.subprotocol == "messaging.v1.msgpack"
        await _expect_error(client, build(setup.conv), code, rid)
        await _still_answers(client, setup.conv)


async def test_binary_frame_on_json_must_be_utf8_json(
    gateways: tuple[Gateway, Gateway], secret: str, setup: Setup
) -> None:
    """On the JSON subprotocol a binary frame of msgpack or invalid UTF-8 is `invalid`."""
    async with _scene(gateways, secret, setup) as (client, _):
        await _expect_error(client, _p(_fetch(setup.conv)), "invalid", None)
        await _expect_error(client, b"\xff\xfe{}", "invalid", None)
        await _still_answers(client, setup.conv)


def _foreign_requests(conv: str, school: SchoolIds) -> list[dict[str, Any]]:
    return [
        {"t": "fetch", "conv": conv},
        {"t": "fetch", "conv": conv, "after": 0, "limit": 1},
        {"t": "send", "conv": conv, "cid": "intrus", "body": "coucou"},
        {"t": "send", "conv": conv, "cid": "intrus2", "body": "re", "reply_to": 2},
        {"t": "read", "conv": conv, "seq": 1},
        {"t": "read", "conv": conv, "seq": 999},
        {"t": "delete", "conv": conv, "seq": 2},
        {"t": "leave", "conv": conv},
        {"t": "add", "conv": conv, "users": [school.parent_b]},
        {"t": "lock", "conv": conv, "reason": "x"},
        {"t": "unlock", "conv": conv},
        {"t": "moderate", "conv": conv, "seq": 2, "action": "remove", "reason": "x"},
    ]


async def test_unknown_and_foreign_conversations_are_not_found_alike(
    gateways: tuple[Gateway, Gateway], secret: str, setup: Setup
) -> None:
    """Every request on an unknown conversation, or on one of another user or school, gets the
    same `not_found` error, so a conversation's existence is never disclosed."""
    s = setup.school
    private = setup.foreign[0]
    async with connect(gateways[1], secret, s.parent_en) as owner:
        async with _scene(gateways, secret, setup) as (client, teacher):
            for template in _foreign_requests("c_doesnotexist0000000", s):
                unknown = await client.request(template)
                assert unknown["t"] == "error", (template, unknown)
                assert unknown["code"] == "not_found", (template, unknown)
                for conv in setup.foreign:
                    foreign = await client.request({**template, "conv": conv})
                    assert foreign["t"] == "error", (template, foreign)
                    assert foreign["code"] == "not_found", (template, foreign)
                    assert foreign["message"] == unknown["message"], (template, foreign)
            await client.send_raw({"t": "typing", "conv": private})
            await _still_answers(client, setup.conv)
            await teacher.send_raw({"t": "typing", "conv": private})
            await owner.wait_for(lambda c: any(f["t"] == "typing" for f in c.others))
        typing = [f for f in owner.others if f["t"] == "typing"]
        assert typing == [{"t": "typing", "conv": private, "user": s.teacher}]
        events = await _fetch_all(owner, private)
        assert [e["kind"] for e in events] == ["created", "message"]
        assert owner.events == []


async def test_unknown_and_foreign_conversations_are_404_over_http(
    gateways: tuple[Gateway, Gateway], secret: str, setup: Setup
) -> None:
    """GET /api/conversations/{conv}/events answers 404 `not_found` alike for both cases."""
    headers = {"Authorization": f"Bearer {mint_token(secret, setup.school.parent)}"}
    async with httpx.AsyncClient(timeout=10, headers=headers) as http:
        bodies = []
        for conv in ("c_doesnotexist0000000", *setup.foreign):
            response = await http.get(f"{gateways[1].url}/api/conversations/{conv}/events")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
            bodies.append(response.json())
        assert all(b == bodies[0] for b in bodies)
        own = await http.get(f"{gateways[1].url}/api/conversations/{setup.conv}/events")
        assert own.status_code == 200
        assert [e["seq"] for e in own.json()["events"]] == [1, 2, 3, 4]


async def test_body_length_limit_is_ten_thousand_characters(
    gateways: tuple[Gateway, Gateway], secret: str
) -> None:
    """A body of 10,001 characters is `too_large`; 10,000 characters (code points) is stored."""
    s = make_school()
    import_school(gateways[0], secret, s)
    async with (
        connect(gateways[0], secret, s.parent) as parent,
        connect(gateways[1], secret, s.teacher, encoding="msgpack") as teacher,
    ):
        conv = (await parent.request({"t": "open", "school": s.school, "members": [s.teacher]}))[
            "conv"
        ]
        too_long = await parent.request(
            {"t": "send", "conv": conv, "cid": "long", "body": "a" * 10_001}
        )
        assert too_long["t"] == "error" and too_long["code"] == "too_large", too_long
        body = "é" * 10_000
        just = await parent.request({"t": "send", "conv": conv, "cid": "just", "body": body})
        assert just["t"] == "ok" and just["seq"] == 2, just
        emoji = "\U0001f600" * 10_000  # 20,000 UTF-16 units, 10,000 code points
        wide = await teacher.request({"t": "send", "conv": conv, "cid": "wide", "body": emoji})
        assert wide["t"] == "ok" and wide["seq"] == 3, wide
        wider = await teacher.request({"t": "send", "conv": conv, "cid": "w2", "body": emoji + "!"})
        assert wider["t"] == "error" and wider["code"] == "too_large", wider
        events = await _fetch_all(teacher, conv)
        assert [e["seq"] for e in events] == [1, 2, 3]
        assert events[1]["body"] == body and events[2]["body"] == emoji


def _padded(conv: str, size: int) -> str:
    """A valid fetch request of exactly `size` bytes (an unknown field pads it)."""
    base = json.dumps({"t": "fetch", "id": RID, "conv": conv, "limit": 1, "pad": ""})
    frame = base[:-2] + "x" * (size - len(base)) + '"}'
    assert len(frame.encode()) == size
    return frame


async def test_frame_of_64_kib_is_read_and_one_byte_more_closes_1009(
    gateways: tuple[Gateway, Gateway], secret: str, setup: Setup
) -> None:
    """A frame of exactly 64 KiB is answered; a frame one byte larger closes with 1009."""
    async with _scene(gateways, secret, setup) as (client, _):
        seen = len(client.others)
        await client.ws.send(_padded(setup.conv, LIMIT))
        await client.wait_for(lambda c: len(c.others) > seen)
        assert client.others[seen]["t"] == "ok" and client.others[seen]["id"] == RID
        await client.ws.send(_padded(setup.conv, LIMIT + 1))
        await client.wait_for(lambda c: c.close_code is not None)
        assert client.close_code == 1009
    async with _scene(gateways, secret, setup, encoding="msgpack") as (client, _):
        await client.ws.send(_p(_fetch(setup.conv, pad=b"x" * LIMIT)))
        await client.wait_for(lambda c: c.close_code is not None)
        assert client.close_code == 1009


async def test_flood_is_rate_limited_then_closed_4029(
    gateways: tuple[Gateway, Gateway], secret: str, setup: Setup
) -> None:
    """Hundreds of frames at once get `rate_limited` errors, then a close with 4029, while a
    client at 8 frames per second on the same gateway is never refused."""
    gw = gateways[0]
    s = setup.school

    async def steady() -> list[dict[str, Any]]:
        async with connect(gw, secret, s.teacher) as client:
            replies = []
            for _ in range(24):
                replies.append(await client.request({"t": "fetch", "conv": setup.conv, "limit": 1}))
                await asyncio.sleep(0.125)
            return replies

    async def flood() -> tuple[list[dict[str, Any]], int | None]:
        ws = await websockets.connect(
            gw.ws_url, subprotocols=["messaging.v1.json"], compression=None
        )
        async with ws:
            await ws.send(json.dumps({"t": "hello", "token": mint_token(secret, s.parent)}))
            assert json.loads(await ws.recv())["t"] == "ready"
            received: list[dict[str, Any]] = []

            async def reader() -> None:
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for data in ws:
                        received.append(json.loads(data))

            task = asyncio.create_task(reader())
            frame = json.dumps({"t": "read", "id": RID, "conv": setup.conv, "seq": 1})
            with contextlib.suppress(websockets.ConnectionClosed):
                for _ in range(600):
                    await ws.send(frame)
            await asyncio.wait_for(task, 20)
            return received, ws.close_code

    replies, (received, code) = await asyncio.gather(steady(), flood())
    assert all(r["t"] == "ok" for r in replies), [r for r in replies if r["t"] != "ok"]
    assert code == 4029
    codes = [f["code"] for f in received if f["t"] == "error"]
    assert "rate_limited" in codes, received[-5:]
    assert set(codes) == {"rate_limited"}
    assert all(f["id"] == RID for f in received if f["t"] in ("ok", "error"))


async def test_eight_frames_per_second_is_never_refused(
    gateways: tuple[Gateway, Gateway], secret: str, setup: Setup
) -> None:
    """A client sending 8 frames per second for 3 seconds gets every reply, none refused."""
    async with _scene(gateways, secret, setup, encoding="msgpack") as (client, _):
        replies = []
        for i in range(24):
            frame = (
                {"t": "fetch", "conv": setup.conv, "limit": 1}
                if i % 2
                else {"t": "read", "conv": setup.conv, "seq": 1}
            )
            replies.append(await client.request(frame))
            await asyncio.sleep(0.125)
        assert [r["t"] for r in replies] == ["ok"] * 24
        assert _errors(client) == []
