"""Random input through decode and parse: only InvalidFrame or ProtocolViolation ever escapes."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging.errors import ErrorCode, ProtocolViolation
from messaging.i18n import known, text
from messaging.protocol.codec import MAX_FRAME_BYTES, Encoding, decode, encode
from messaging.protocol.frames import FRAME_TYPES, InvalidFrame, parse

FIELDS = [
    "id", "token", "resume", "school", "members", "title", "conv", "users", "cid", "body",
    "attachments", "reply_to", "after", "before", "limit", "seq", "action", "reason",
]  # fmt: skip

FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=40,
)
msgpack_values = st.recursive(
    scalars | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(
            st.text(max_size=8) | st.integers(-(2**63), 2**63) | st.binary(max_size=4),
            inner,
            max_size=6,
        )
    ),
    max_leaves=40,
)

# Values near the protocol's bounds, more likely to reach deep into parse().
boundary_ints = st.sampled_from([-1, 0, 1, 2, 49, 50, 200, 201, 2**53, 2**53 + 1, 2**63 - 1])
identifiers = st.text(min_size=0, max_size=130) | st.sampled_from(["c-1", "a" * 128, "a" * 129, ""])
id_lists = st.lists(identifiers, max_size=12) | st.builds(
    lambda n: [f"u-{i}" for i in range(n)], st.sampled_from([0, 1, 10, 11, 500, 501])
)
field_values = (
    boundary_ints
    | st.booleans()
    | st.none()
    | identifiers
    | id_lists
    | st.sampled_from(["remove", "x" * 10_000, "x" * 10_001, " ", "\x00"])
    | st.dictionaries(identifiers, boundary_ints | st.booleans(), max_size=4)
    | json_values
)
frame_maps = st.fixed_dictionaries(
    {"t": st.sampled_from(sorted(FRAME_TYPES)) | st.text(max_size=8) | scalars}
) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), field_values, max_size=8)
BASES: list[dict[str, Any]] = [
    {"t": "hello", "token": "a.b.c", "resume": {"c-1": 4}},
    {"t": "open", "id": 1, "school": "s", "members": ["p-1"], "title": "T"},
    {"t": "add", "id": 2, "conv": "c-1", "users": ["p-3"]},
    {"t": "leave", "id": 3, "conv": "c-1"},
    {
        "t": "send",
        "id": 4,
        "conv": "c-1",
        "cid": "k",
        "body": "x",
        "attachments": [],
        "reply_to": 1,
    },
    {"t": "fetch", "id": 5, "conv": "c-1", "after": 0, "before": 9, "limit": 20},
    {"t": "read", "id": 6, "conv": "c-1", "seq": 3},
    {"t": "typing", "conv": "c-1"},
    {"t": "delete", "id": 7, "conv": "c-1", "seq": 3},
    {"t": "lock", "id": 8, "conv": "c-1", "reason": "r"},
    {"t": "unlock", "id": 9, "conv": "c-1"},
    {"t": "moderate", "id": 10, "conv": "c-1", "seq": 3, "action": "remove", "reason": "r"},
]
# A valid frame with a few of its fields replaced, removed or added: reaches every checker.
mutated_frames = st.builds(
    lambda base, changes, dropped: {
        k: v for k, v in (base | changes).items() if k not in dropped or k == "t"
    },
    st.sampled_from(BASES),
    st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=3),
    st.sets(st.sampled_from(FIELDS), max_size=2),
)


def _through(data: bytes | str, encoding: Encoding) -> None:
    """Decode then parse; fail on anything but the two protocol errors."""
    try:
        parse(decode(data, encoding))
    except InvalidFrame as exc:
        assert exc.code in set(ErrorCode)
        assert known(exc.reason), exc.reason
        assert "{" not in text(exc.reason, "en", **exc.params)
        assert exc.request_id is None or 0 <= exc.request_id <= 2**53
    except ProtocolViolation as exc:
        assert len(data) > MAX_FRAME_BYTES // 4, exc


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(list(Encoding)))
def test_random_bytes_raise_only_protocol_errors(data: bytes, encoding: Encoding) -> None:
    """Arbitrary bytes in either encoding yield a frame or a protocol error, nothing else."""
    _through(data, encoding)


@FUZZ
@given(st.text(max_size=300))
def test_random_text_raises_only_protocol_errors(data: str) -> None:
    """Arbitrary text, lone surrogates included, yields a frame or a protocol error."""
    _through(data, Encoding.JSON)


@FUZZ
@given(json_values)
def test_random_json_values_raise_only_protocol_errors(value: Any) -> None:
    """Any JSON value, map or not, yields a frame or a protocol error."""
    _through(orjson.dumps(value), Encoding.JSON)


@FUZZ
@given(msgpack_values)
def test_random_msgpack_values_raise_only_protocol_errors(value: Any) -> None:
    """Any msgpack value, with integer or binary keys too, yields a frame or a protocol error."""
    _through(msgpack.packb(value, use_bin_type=True), Encoding.MSGPACK)


@settings(FUZZ, max_examples=800)
@given(mutated_frames | frame_maps, st.sampled_from(list(Encoding)))
def test_random_frames_raise_only_protocol_errors(
    frame: dict[Any, Any], encoding: Encoding
) -> None:
    """Maps with random types and fields near every bound yield a frame or InvalidFrame."""
    _through(encode(frame, encoding), encoding)


@settings(FUZZ, max_examples=200)
@given(
    st.integers(min_value=1, max_value=MAX_FRAME_BYTES),
    st.sampled_from(["[", "{", '{"a":']),
    st.sampled_from(list(Encoding)),
)
def test_deep_nesting_raises_only_protocol_errors(
    depth: int, opener: str, encoding: Encoding
) -> None:
    """Nesting of any depth, up to and past the frame size, never exhausts the stack."""
    if encoding is Encoding.JSON:
        data: bytes | str = opener * depth
    else:
        data = {"[": b"\x91", "{": b"\x81\xa1a", '{"a":': b"\x81\xa1a"}[opener] * depth + b"\xc0"
    _through(data, encoding)


@settings(FUZZ, max_examples=200)
@given(
    st.integers(min_value=-128, max_value=127),
    st.binary(max_size=20),
    st.sampled_from([b"\xd4", b"\xd5", b"\xd6", b"\xd7", b"\xd8", b"\xc7", b"\xc8", b"\xc9"]),
)
def test_extension_types_raise_only_protocol_errors(code: int, data: bytes, marker: bytes) -> None:
    """Extension types of every code and length, well formed or not, are refused."""
    sizes = {b"\xd4": 1, b"\xd5": 2, b"\xd6": 4, b"\xd7": 8, b"\xd8": 16}
    if marker in sizes:
        payload = marker + code.to_bytes(1, "big", signed=True) + data[: sizes[marker]]
    else:
        width = {b"\xc7": 1, b"\xc8": 2, b"\xc9": 4}[marker]
        payload = marker + len(data).to_bytes(width, "big") + code.to_bytes(1, "big", signed=True)
        payload += data
    frame = b"\x82\xa1t\xa4send\xa1v" + payload
    try:
        decode(frame, Encoding.MSGPACK)
    except InvalidFrame:
        return
    raise AssertionError("an extension type was accepted")
