"""Access tokens: pinned algorithms, required claims, and the classic attacks refused."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from messaging.errors import ErrorCode, MessagingError
from messaging.gateway.auth import Claims, TokenVerifier, bearer_token, mint_token

SECRET = "test-secret-long-enough-for-hs512-too-" * 2  # HS384/HS512 tokens are signed with it


def _public_pem(key: Any) -> bytes:
    pem: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "t-100", "iat": now, "exp": now + 600, "aud": "messaging"}
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_made(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A token built by hand, as an attacker would (PyJWT refuses to sign some of these)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _refused(verifier: TokenVerifier, token: str, reason: str = "token_invalid") -> None:
    with pytest.raises(MessagingError) as caught:
        verifier.verify(token)
    assert (caught.value.code, caught.value.reason) == (ErrorCode.UNAUTHENTICATED, reason)
    assert token not in str(caught.value) or not token


@pytest.fixture
def hs_verifier() -> TokenVerifier:
    return TokenVerifier(hs256_secret=SECRET, public_keys_pem=None)


# --- HS256 ---------------------------------------------------------------------------------------


def test_minted_hs256_token_is_verified(hs_verifier: TokenVerifier) -> None:
    """A token from mint_token passes and yields its subject and lifetime."""
    now = int(time.time())
    token = mint_token(SECRET, "t-100", ttl_s=600, now=now)
    assert hs_verifier.verify(token) == Claims(sub="t-100", exp=now + 600, iat=now)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "messaging"
    assert hs_verifier.algorithms == ("HS256",)


def test_expired_token_is_refused_as_expired(hs_verifier: TokenVerifier) -> None:
    """A token past its exp (beyond the leeway) is token_expired."""
    token = mint_token(SECRET, "t-100", ttl_s=3600, now=time.time() - 7200)
    _refused(hs_verifier, token, "token_expired")


def test_token_just_expired_passes_within_the_leeway(hs_verifier: TokenVerifier) -> None:
    """A token expired ten seconds ago passes with the default 30-second leeway."""
    token = mint_token(SECRET, "t-100", ttl_s=60, now=time.time() - 70)
    assert hs_verifier.verify(token).sub == "t-100"


def test_token_issued_in_the_future_is_refused(hs_verifier: TokenVerifier) -> None:
    """A token whose iat is well in the future is refused."""
    now = int(time.time())
    token = jwt.encode(_claims(iat=now + 3600, exp=now + 7200), SECRET, algorithm="HS256")
    _refused(hs_verifier, token)


@pytest.mark.parametrize("aud", ["other", ["other", "x"], "", "Messaging"])
def test_wrong_audience_is_refused(hs_verifier: TokenVerifier, aud: Any) -> None:
    """A token for another audience is token_invalid."""
    _refused(hs_verifier, jwt.encode(_claims(aud=aud), SECRET, algorithm="HS256"))


def test_audience_list_holding_messaging_passes(hs_verifier: TokenVerifier) -> None:
    """An aud array that includes messaging is accepted (RFC 7519 section 4.1.3)."""
    token = jwt.encode(_claims(aud=["portal", "messaging"]), SECRET, algorithm="HS256")
    assert hs_verifier.verify(token).sub == "t-100"


@pytest.mark.parametrize("claim", ["sub", "exp", "aud"])
def test_missing_required_claim_is_refused(hs_verifier: TokenVerifier, claim: str) -> None:
    """A token without sub, exp or aud is token_invalid."""
    _refused(hs_verifier, jwt.encode(_claims(**{claim: None}), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("sub", [42, "", ["t-100"], "x" * 129])
def test_malformed_subject_is_refused(hs_verifier: TokenVerifier, sub: Any) -> None:
    """A subject that is not a short non-empty string is token_invalid."""
    token = _hand_made({"alg": "HS256", "typ": "JWT"}, _claims(sub=sub), SECRET.encode())
    _refused(hs_verifier, token)


def test_non_integer_dates_are_accepted(hs_verifier: TokenVerifier) -> None:
    """exp and iat may be non-integer NumericDates (RFC 7519 section 2)."""
    now = time.time()
    token = jwt.encode(_claims(iat=now, exp=now + 60.5), SECRET, algorithm="HS256")
    assert hs_verifier.verify(token) == Claims(sub="t-100", exp=int(now + 60.5), iat=int(now))


def test_wrong_secret_is_refused(hs_verifier: TokenVerifier) -> None:
    """A token signed with another secret is token_invalid."""
    _refused(hs_verifier, mint_token("another-secret-of-thirty-two-bytes!!", "t-100"))


def test_tampered_payload_is_refused(hs_verifier: TokenVerifier) -> None:
    """Changing the payload of a signed token breaks its signature."""
    header, _, signature = mint_token(SECRET, "t-100").split(".")
    forged = _b64(json.dumps(_claims(sub="principal")).encode())
    _refused(hs_verifier, f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_alg_none_is_refused(hs_verifier: TokenVerifier, alg: str) -> None:
    """An unsigned token (alg none, in any spelling) is token_invalid."""
    _refused(hs_verifier, _hand_made({"alg": alg, "typ": "JWT"}, _claims(), None))
    _refused(hs_verifier, _hand_made({"alg": alg, "typ": "JWT"}, _claims(), SECRET.encode()))


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_refused(hs_verifier: TokenVerifier, alg: str) -> None:
    """Only HS256 is configured; HS384 and HS512 with the right secret are still refused."""
    _refused(hs_verifier, jwt.encode(_claims(), SECRET, algorithm=alg))


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b", "...", "eyJhbGciOiJIUzI1NiJ9.e30.", "x" * 10_000, "é.é.é"],
)
def test_garbage_tokens_are_refused(hs_verifier: TokenVerifier, token: str) -> None:
    """Strings that are not JWTs are token_invalid."""
    _refused(hs_verifier, token)


def test_header_that_is_not_an_object_is_refused(hs_verifier: TokenVerifier) -> None:
    """A header of the wrong JSON type is token_invalid, not a crash."""
    for header in ("[1]", '"HS256"', '{"alg": ["HS256"]}', '{"alg": "HS256", "kid": 5}'):
        _refused(hs_verifier, f"{_b64(header.encode())}.{_b64(b'{}')}.{_b64(b'x')}")


# --- RS256 and EdDSA -----------------------------------------------------------------------------


def test_rs256_token_is_verified_with_the_configured_key(rsa_key: rsa.RSAPrivateKey) -> None:
    """An RS256 token signed by a configured RSA key passes."""
    verifier = TokenVerifier(hs256_secret=None, public_keys_pem=_public_pem(rsa_key))
    assert verifier.verify(jwt.encode(_claims(), rsa_key, algorithm="RS256")).sub == "t-100"


def test_ed25519_token_is_verified_with_the_configured_key(
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    """An EdDSA token signed by a configured Ed25519 key passes."""
    verifier = TokenVerifier(hs256_secret=None, public_keys_pem=_public_pem(ed_key))
    assert verifier.verify(jwt.encode(_claims(), ed_key, algorithm="EdDSA")).sub == "t-100"


def test_any_key_of_a_multi_key_pem_verifies(
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    """With several keys in the PEM file, each one's tokens pass."""
    pem = _public_pem(ed_key) + b"\n" + _public_pem(other_rsa_key) + _public_pem(rsa_key)
    verifier = TokenVerifier(hs256_secret=SECRET, public_keys_pem=pem)
    assert set(verifier.algorithms) == {"HS256", "RS256", "EdDSA"}
    for key, alg in ((rsa_key, "RS256"), (other_rsa_key, "RS256"), (ed_key, "EdDSA")):
        assert verifier.verify(jwt.encode(_claims(), key, algorithm=alg)).sub == "t-100"
    assert verifier.verify(mint_token(SECRET, "t-100")).sub == "t-100"


def test_pkcs1_keys_and_certificates_are_accepted_in_the_pem_file(
    rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    """A PKCS#1 RSA public key and an X.509 certificate both configure their key."""
    pkcs1 = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messaging-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ed_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ed_key, None)
    )
    pem = pkcs1 + certificate.public_bytes(serialization.Encoding.PEM)
    verifier = TokenVerifier(hs256_secret=None, public_keys_pem=pem)
    assert verifier.verify(jwt.encode(_claims(), rsa_key, algorithm="RS256")).sub == "t-100"
    assert verifier.verify(jwt.encode(_claims(), ed_key, algorithm="EdDSA")).sub == "t-100"


def test_rs256_token_from_an_unknown_key_is_refused(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    """An RS256 token signed by a key that is not configured is token_invalid."""
    verifier = TokenVerifier(hs256_secret=None, public_keys_pem=_public_pem(rsa_key))
    _refused(verifier, jwt.encode(_claims(), other_rsa_key, algorithm="RS256"))


def test_expired_rs256_token_is_refused_as_expired(rsa_key: rsa.RSAPrivateKey) -> None:
    """Expiry applies to RS256 tokens too."""
    verifier = TokenVerifier(hs256_secret=None, public_keys_pem=_public_pem(rsa_key))
    old = int(time.time()) - 7200
    _refused(
        verifier,
        jwt.encode(_claims(iat=old, exp=old + 60), rsa_key, algorithm="RS256"),
        "token_expired",
    )


def test_hs256_token_is_refused_when_only_public_keys_are_configured(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    """Without a configured secret, HS256 is not an accepted algorithm."""
    verifier = TokenVerifier(hs256_secret=None, public_keys_pem=_public_pem(rsa_key))
    _refused(verifier, mint_token(SECRET, "t-100"))


def test_hs256_signed_with_the_rsa_public_key_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    """The algorithm-confusion attack (HMAC keyed with the public PEM) is refused."""
    pem = _public_pem(rsa_key)
    forged = _hand_made({"alg": "HS256", "typ": "JWT"}, _claims(sub="principal"), pem)
    _refused(TokenVerifier(hs256_secret=None, public_keys_pem=pem), forged)
    _refused(TokenVerifier(hs256_secret=SECRET, public_keys_pem=pem), forged)


def test_eddsa_token_is_refused_when_only_rsa_keys_are_configured(
    rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    """A token whose alg needs a key family that is not configured is refused."""
    verifier = TokenVerifier(hs256_secret=None, public_keys_pem=_public_pem(rsa_key))
    _refused(verifier, jwt.encode(_claims(), ed_key, algorithm="EdDSA"))


def test_rs256_header_on_an_eddsa_signature_is_refused(
    rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    """Relabelling a token's alg does not make another key family verify it."""
    pem = _public_pem(rsa_key) + _public_pem(ed_key)
    verifier = TokenVerifier(hs256_secret=None, public_keys_pem=pem)
    _, payload, signature = jwt.encode(_claims(), ed_key, algorithm="EdDSA").split(".")
    relabelled = (
        f"{_b64(json.dumps({'alg': 'RS256', 'typ': 'JWT'}).encode())}.{payload}.{signature}"
    )
    _refused(verifier, relabelled)


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256"])
def test_other_rsa_algorithms_are_refused(rsa_key: rsa.RSAPrivateKey, alg: str) -> None:
    """Only RS256 is accepted with RSA keys."""
    verifier = TokenVerifier(hs256_secret=None, public_keys_pem=_public_pem(rsa_key))
    _refused(verifier, jwt.encode(_claims(), rsa_key, algorithm=alg))


# --- configuration -------------------------------------------------------------------------------


def test_short_secret_is_a_configuration_error() -> None:
    """An HS256 secret under 32 bytes is refused when configured and when minting."""
    with pytest.raises(ValueError):
        TokenVerifier(hs256_secret="short", public_keys_pem=None)
    with pytest.raises(ValueError):
        mint_token("short", "t-100")


def test_verifier_without_any_key_is_a_configuration_error() -> None:
    """A verifier that could accept nothing is refused."""
    with pytest.raises(ValueError):
        TokenVerifier(hs256_secret=None, public_keys_pem=None)


@pytest.mark.parametrize("kind", ["empty", "garbage", "private", "small_rsa", "ec"])
def test_unusable_public_key_files_are_configuration_errors(
    kind: str, rsa_key: rsa.RSAPrivateKey
) -> None:
    """A PEM file without usable RSA/EdDSA public keys is refused at start."""
    if kind == "empty":
        pem = b""
    elif kind == "garbage":
        pem = b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"
    elif kind == "private":
        pem = rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    elif kind == "small_rsa":
        pem = _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505
    else:
        pem = _public_pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError):
        TokenVerifier(hs256_secret=None, public_keys_pem=pem)


# --- the Authorization header --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer a b", None),
        ("Bearerabc", None),
    ],
)
def test_bearer_token_parses_the_authorization_header(
    header: str | None, token: str | None
) -> None:
    """Only `Bearer <token>` yields a token; anything else is None."""
    assert bearer_token(header) == token
