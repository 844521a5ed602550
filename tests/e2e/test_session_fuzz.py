"""Random frames against a live session: only protocol errors, and the session keeps serving."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from messaging.errors import ErrorCode
from messaging.gateway.auth import mint_token
from tests.e2e.conftest import import_school
from tests.rosters import SchoolIds, make_school
from tests.servers import Gateway, start_gateway

TYPES = [
    "hello",
    "open",
    "add",
    "leave",
    "send",
    "fetch",
    "read",
    "typing",
    "delete",
    "lock",
    "unlock",
    "moderate",
    "nope",
    "",
    "SEND",
]
CODES = {c.value for c in ErrorCode}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzz_setup(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, SchoolIds, str, str]]:
    """A gateway whose flood control lets a fuzzer through, and a conversation to aim at."""
    gw = start_gateway(
        service_env,
        tmp_path_factory.mktemp("fuzz-logs"),
        MESSAGING_RATE_FRAMES_PER_S="100000",
        MESSAGING_RATE_BURST="100000",
    )
    secret = service_env["MESSAGING_JWT_SECRET"]
    try:
        school = make_school()
        import_school(gw, secret, school)
        with _session(gw, secret, school.teacher, "json") as ws:
            ws.send(
                json.dumps(
                    {"t": "open", "id": 1, "school": school.school, "members": [school.parent]}
                )
            )
            conv = _decode(ws.recv(timeout=10))["conv"]
        yield gw, school, conv, secret
    finally:
        gw.terminate()


@contextlib.contextmanager
def _session(gw: Gateway, secret: str, user: str, encoding: str) -> Iterator[ClientConnection]:
    with ws_connect(gw.ws_url, subprotocols=[f"messaging.v1.{encoding}"], open_timeout=10) as ws:
        ws.send(json.dumps({"t": "hello", "token": mint_token(secret, user)}))
        assert _decode(ws.recv(timeout=10))["t"] == "ready"
        yield ws


def _frame(draw: Any, conv: str) -> dict[Any, Any]:
    frame: dict[Any, Any] = draw(st.dictionaries(st.text(max_size=8), values, max_size=6))
    if draw(st.booleans()):
        frame["t"] = draw(st.sampled_from(TYPES))
    if draw(st.booleans()):
        frame["conv"] = draw(st.one_of(st.just(conv), st.text(max_size=20), values))
    for name in ("id", "seq", "after", "before", "limit", "body", "cid", "members", "users"):
        if draw(st.integers(0, 3)) == 0:
            frame[name] = draw(values)
    return frame


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_frames_get_only_protocol_errors(
    fuzz_setup: tuple[Gateway, SchoolIds, str, str], data: st.DataObject
) -> None:
    """Every random frame is answered by ok or a known error code, and the session goes on."""
    gw, school, conv, secret = fuzz_setup
    encoding = data.draw(st.sampled_from(["json", "msgpack"]))
    with _session(gw, secret, school.teacher, encoding) as ws:
        for _ in range(data.draw(st.integers(1, 8))):
            frame = _frame(data.draw, conv)
            try:
                raw: str | bytes = (
                    json.dumps(frame, default=repr)
                    if encoding == "json"
                    else msgpack.packb(frame, use_bin_type=True)
                )
            except (TypeError, ValueError, OverflowError):
                continue
            ws.send(raw)
        ws.send(json.dumps({"t": "fetch", "id": 999_999, "conv": conv, "limit": 1}))
        while True:
            reply = _decode(ws.recv(timeout=10))
            assert reply["t"] in ("ok", "error", "event", "receipt", "typing"), reply
            if reply["t"] == "error":
                assert reply["code"] in CODES and isinstance(reply["message"], str)
            if reply.get("id") == 999_999:
                assert reply["t"] == "ok"
                break


def _decode(data: str | bytes) -> dict[str, Any]:
    if isinstance(data, bytes):
        return dict(msgpack.unpackb(data, raw=False))
    return dict(json.loads(data))
