"""Authentication end to end: hello, tokens, accounts, Origin, subprotocols, HTTP 401, logs."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import jwt
import msgpack
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from messaging.gateway.auth import mint_token
from tests.e2e.conftest import import_school
from tests.rosters import SchoolIds, make_school, roster_doc
from tests.servers import Gateway, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Every token string these tests hand to a gateway; none of them may ever reach its log.
USED_TOKENS: list[str] = []

CLOSE_TIMEOUT_S = 20.0


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(sub: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + 3600, "aud": "messaging", **over}


def _token(secret: str, sub: str) -> str:
    token = mint_token(secret, sub)
    USED_TOKENS.append(token)
    return token


def _bad_tokens(secret: str, sub: str) -> dict[str, str]:
    """Tokens the gateway must refuse, by what is wrong with them."""
    now = int(time.time())
    tokens = {
        "expired": jwt.encode(
            _claims(sub, iat=now - 7200, exp=now - 3600), secret, algorithm="HS256"
        ),
        "wrong_audience": jwt.encode(_claims(sub, aud="another-service"), secret, "HS256"),
        "other_secret": jwt.encode(
            _claims(sub), "another-secret-that-is-long-enough-0123456789", algorithm="HS256"
        ),
        "alg_none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims(sub)) + ".",
        "alg_not_configured": jwt.encode(_claims(sub), secret + secret, algorithm="HS512"),
        "no_subject": jwt.encode(
            {k: v for k, v in _claims(sub).items() if k != "sub"}, secret, "HS256"
        ),
        "garbage": "this-is-not-a-jwt",
    }
    USED_TOKENS.extend(tokens.values())
    return tokens


async def _closed_code(ws: Any) -> tuple[list[Any], int | None]:
    """Every frame received until the server closes, and the close code."""
    received: list[Any] = []
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            while True:
                received.append(await ws.recv())
    except ConnectionClosed:
        pass
    return received, ws.close_code


async def _hello_and_close(gw: Gateway, hello: Any) -> tuple[list[Any], int | None]:
    async with websockets.connect(
        gw.ws_url, subprotocols=["messaging.v1.json"], compression=None
    ) as ws:
        await ws.send(hello if isinstance(hello, str) else json.dumps(hello))
        return await _closed_code(ws)


async def test_no_hello_within_ten_seconds_closes_4001(
    gateways: tuple[Gateway, Gateway],
) -> None:
    """A connection that sends nothing is closed with 4001 once the hello timeout passes."""
    async with websockets.connect(
        gateways[0].ws_url, subprotocols=["messaging.v1.json"], compression=None
    ) as ws:
        received, code = await _closed_code(ws)
    assert code == 4001
    assert all(json.loads(f).get("t") != "ready" for f in received)


@pytest.mark.parametrize(
    "first",
    [
        {"t": "fetch", "id": 1, "conv": "c_1"},
        {"token": "x"},
        "not json at all",
    ],
    ids=["request", "no_type", "garbage"],
)
async def test_first_frame_not_hello_closes_4001(
    gateways: tuple[Gateway, Gateway], first: Any
) -> None:
    """Any first frame other than a hello closes the connection with 4001 and no ready."""
    hello = first if isinstance(first, str) else json.dumps(first)
    received, code = await _hello_and_close(gateways[0], hello)
    assert code == 4001
    assert all(json.loads(f).get("t") != "ready" for f in received)


async def test_bad_tokens_get_unauthenticated_then_close_4001(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Each bad token, for a user who exists, gets one `error` frame `unauthenticated` (no
    ready), then close 4001, on either gateway."""
    for i, (reason, token) in enumerate(_bad_tokens(secret, school.parent).items()):
        hello = {"t": "hello", "token": token}
        received, code = await _hello_and_close(gateways[i % 2], hello)
        assert code == 4001, reason
        frames = [json.loads(f) for f in received]
        assert [f["t"] for f in frames] == ["error"], (reason, frames)
        assert frames[0]["code"] == "unauthenticated", reason
        assert isinstance(frames[0]["message"], str) and frames[0]["message"]


async def _deactivated_user(gateways: tuple[Gateway, Gateway], secret: str) -> str:
    """A parent who could connect, then was deactivated by a roster `replace`."""
    s = make_school()
    import_school(gateways[0], secret, s)
    async with connect(gateways[0], secret, s.parent_b) as before:
        assert before.ready["user"]["id"] == s.parent_b
    doc = roster_doc(s)
    doc["schools"][0]["replace"] = True
    doc["parents"] = [p for p in doc["parents"] if p["id"] != s.parent_b]
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{gateways[0].url}/api/admin/roster",
            json=doc,
            headers={"Authorization": f"Bearer {_token(secret, 'admin')}"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["deactivated"] == [s.parent_b]
    return s.parent_b


async def test_unknown_user_closes_4003(gateways: tuple[Gateway, Gateway], secret: str) -> None:
    """A valid token for a subject the roster does not know is closed with 4003."""
    token = _token(secret, "nobody-" + make_school().prefix)
    received, code = await _hello_and_close(gateways[1], {"t": "hello", "token": token})
    assert code == 4003
    assert all(json.loads(f).get("t") != "ready" for f in received)


async def test_deactivated_user_closes_4003(gateways: tuple[Gateway, Gateway], secret: str) -> None:
    """A user deactivated by a roster `replace` cannot connect any more (close 4003)."""
    user = await _deactivated_user(gateways, secret)
    for gw in gateways:
        token = _token(secret, user)
        received, code = await _hello_and_close(gw, {"t": "hello", "token": token})
        assert code == 4003
        assert all(json.loads(f).get("t") != "ready" for f in received)


async def test_bearer_on_handshake_then_hello_without_token_is_ready(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """`Authorization: Bearer` on the handshake and a token-less hello give `ready`."""
    token = _token(secret, school.teacher)
    async with websockets.connect(
        gateways[1].ws_url,
        subprotocols=["messaging.v1.json"],
        compression=None,
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        await ws.send(json.dumps({"t": "hello"}))
        ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ready["t"] == "ready", ready
        assert ready["user"]["id"] == school.teacher


async def test_bad_bearer_on_handshake_closes_4001(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A bad token in the handshake's `Authorization: Bearer` is refused like one in hello."""
    token = _bad_tokens(secret, school.teacher)["other_secret"]
    async with websockets.connect(
        gateways[0].ws_url,
        subprotocols=["messaging.v1.json"],
        compression=None,
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        await ws.send(json.dumps({"t": "hello"}))
        received, code = await _closed_code(ws)
    assert code == 4001
    assert [json.loads(f)["code"] for f in received] == ["unauthenticated"]


async def test_hello_without_any_token_closes_4001(gateways: tuple[Gateway, Gateway]) -> None:
    """A hello without token and without a bearer header is closed with 4001."""
    received, code = await _hello_and_close(gateways[0], {"t": "hello"})
    assert code == 4001
    assert all(json.loads(f).get("t") != "ready" for f in received)


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example.org", "null", "http://127.0.0.1:1", "https://127.0.0.1.evil.example"],
)
async def test_origin_not_allowed_is_refused_403(
    gateways: tuple[Gateway, Gateway], origin: str
) -> None:
    """A handshake whose Origin is not allowed is refused with HTTP 403."""
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            gateways[0].ws_url,
            origin=origin,
            compression=None,  # type: ignore[arg-type]
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_origin_lookalike_of_own_is_refused_403(
    gateways: tuple[Gateway, Gateway],
) -> None:
    """An Origin that merely starts with the gateway's own origin is refused with HTTP 403."""
    gw = gateways[0]
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            gw.ws_url,
            origin=f"{gw.url}.evil.example",  # type: ignore[arg-type]
            compression=None,
        ):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("with_origin", [False, True], ids=["no_origin", "own_origin"])
async def test_no_origin_or_own_origin_is_accepted(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds, with_origin: bool
) -> None:
    """Without Origin, or with the gateway's own origin, the handshake and hello succeed."""
    gw = gateways[0]
    origin = gw.url if with_origin else None
    async with websockets.connect(
        gw.ws_url,
        origin=origin,  # type: ignore[arg-type]
        subprotocols=["messaging.v1.json"],
        compression=None,
    ) as ws:
        await ws.send(json.dumps({"t": "hello", "token": _token(secret, school.parent)}))
        ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ready["t"] == "ready"


@pytest.mark.parametrize(
    ("offered", "selected"),
    [
        (["messaging.v1.msgpack"], "messaging.v1.msgpack"),
        (["messaging.v1.msgpack", "messaging.v1.json"], "messaging.v1.msgpack"),
        (["messaging.v1.json", "messaging.v1.msgpack"], "messaging.v1.json"),
        (["x-unknown", "messaging.v1.msgpack"], "messaging.v1.msgpack"),
    ],
)
async def test_first_supported_subprotocol_is_selected(
    gateways: tuple[Gateway, Gateway],
    secret: str,
    school: SchoolIds,
    offered: list[str],
    selected: str,
) -> None:
    """The gateway selects the first offered subprotocol it supports and speaks its encoding."""
    async with websockets.connect(
        gateways[1].ws_url,
        subprotocols=offered,
        compression=None,  # type: ignore[arg-type]
    ) as ws:
        assert ws.subprotocol == selected
        hello = {"t": "hello", "token": _token(secret, school.parent)}
        if selected.endswith("msgpack"):
            await ws.send(msgpack.packb(hello, use_bin_type=True))
            data = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(data, bytes)
            ready = msgpack.unpackb(data, raw=False)
        else:
            await ws.send(json.dumps(hello))
            data = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(data, str)
            ready = json.loads(data)
        assert ready["t"] == "ready"
        assert ready["user"]["id"] == school.parent


async def test_no_subprotocol_offered_gets_json(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A client offering no subprotocol gets none named back and speaks JSON text frames."""
    async with websockets.connect(gateways[0].ws_url, compression=None) as ws:
        assert ws.subprotocol is None
        await ws.send(json.dumps({"t": "hello", "token": _token(secret, school.parent)}))
        data = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(data, str)
        assert json.loads(data)["t"] == "ready"
        await ws.send(json.dumps({"t": "fetch", "id": 3, "conv": "c_does_not_exist"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["t"] == "error" and reply["id"] == 3 and reply["code"] == "not_found"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic YWRtaW46YWRtaW4=", "Bearer not-a-jwt", "Bearer a b"],
    ids=["absent", "empty", "no_token", "basic", "garbage", "two_words"],
)
@pytest.mark.parametrize("path", ["/api/me", "/api/conversations"])
async def test_http_api_without_valid_token_is_401(
    gateways: tuple[Gateway, Gateway], path: str, authorization: str | None
) -> None:
    """The HTTP API answers 401 with a JSON `unauthenticated` error without a valid token."""
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{gateways[0].url}{path}", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "unauthenticated"
    assert isinstance(error["message"], str) and error["message"]


async def test_http_api_refuses_bad_tokens_401(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """Every kind of bad token is refused by the HTTP API with 401 `unauthenticated`."""
    async with httpx.AsyncClient(timeout=10) as http:
        for reason, token in _bad_tokens(secret, school.parent).items():
            response = await http.get(
                f"{gateways[1].url}/api/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401, reason
            assert response.json()["error"]["code"] == "unauthenticated", reason
        good = await http.get(
            f"{gateways[1].url}/api/me",
            headers={"Authorization": f"Bearer {_token(secret, school.parent)}"},
        )
        assert good.status_code == 200
        assert good.json()["id"] == school.parent


def _leaks(text: str, tokens: list[str]) -> list[str]:
    """The tokens, or the signatures of tokens, that occur in `text`."""
    leaked = [t for t in tokens if t in text]
    signatures = [t.rsplit(".", 1)[-1] for t in tokens if t.count(".") == 2]
    return leaked + [sig for sig in signatures if len(sig) > 16 and sig in text]


async def test_tokens_never_reach_the_gateway_log(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """No token sent in a hello or an Authorization header, good or bad, is in any log."""
    gw = gateways[0]
    good = _token(secret, school.parent)
    async with websockets.connect(gw.ws_url, compression=None) as ws:
        await ws.send(json.dumps({"t": "hello", "token": good}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["t"] == "ready"
    for token in _bad_tokens(secret, school.parent).values():
        await _hello_and_close(gw, {"t": "hello", "token": token})
    header = {"Authorization": f"Bearer {good}"}
    async with websockets.connect(gw.ws_url, compression=None, additional_headers=header) as ws:
        await ws.send(json.dumps({"t": "hello"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["t"] == "ready"
    async with httpx.AsyncClient(timeout=10) as http:
        for path in ("/api/me", "/api/conversations", "/api/admin/roster"):
            response = await http.post(f"{gw.url}{path}", headers=header, content=b"{}")
            assert response.status_code in (403, 405)
            response = await http.get(f"{gw.url}{path}", headers=header)
            assert response.status_code in (200, 405)
    assert "ws_auth_refused" in gw.log(), "the refusals above were logged"
    for g in gateways:
        assert _leaks(g.log(), USED_TOKENS) == []


async def test_token_in_query_string_is_not_logged(
    gateways: tuple[Gateway, Gateway], secret: str, school: SchoolIds
) -> None:
    """A token a client wrongly puts in the /ws query string does not reach the log either."""
    gw = gateways[1]
    token = mint_token(secret, school.parent)
    async with websockets.connect(f"{gw.ws_url}?token={token}", compression=None) as ws:
        await ws.send(json.dumps({"t": "hello", "token": token}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["t"] == "ready"
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"{gw.url}/api/me?token={token}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
    assert _leaks(gw.log(), [token]) == []
