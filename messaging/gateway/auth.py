"""Access tokens: JWT verification with algorithms pinned by configuration (PROTOCOL.md section 2).

- HS256 is accepted only when a shared secret is configured, and only with that secret.
- RS256 is accepted only with the configured RSA public keys, EdDSA only with the configured
  Ed25519/Ed448 public keys. The token's `alg` picks the key family, never the other way round,
  so an RSA public key is never used as an HMAC secret (the classic confusion attack).
- `alg: none` and every other algorithm are refused.
- `sub`, `exp` and `aud` (= `messaging`) are required; `exp`, `nbf` and `iat` get `leeway_s`.

Failures are `MessagingError(UNAUTHENTICATED, "token_invalid" | "token_expired")`. Tokens are never
logged nor put into an error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from messaging.errors import ErrorCode, MessagingError

AUDIENCE: Final = "messaging"
MIN_SECRET_BYTES: Final = 32  # RFC 7518 section 3.2: an HS256 key is at least 256 bits
MIN_RSA_BITS: Final = 2048
MAX_TOKEN_CHARS: Final = 8_192
MAX_SUBJECT_CHARS: Final = 128

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Claims:
    """What the service takes from a verified token: the user id and the token's lifetime."""

    sub: str
    exp: int
    iat: int | None = None


def _check_secret(secret: str) -> bytes:
    key = secret.encode("utf-8")
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the HS256 secret must be at least {MIN_SECRET_BYTES} bytes long")
    return key


def load_public_keys(
    pem: bytes,
) -> tuple[list[RSAPublicKey], list[Ed25519PublicKey | Ed448PublicKey]]:
    """RSA and EdDSA public keys from PEM text holding one or more public keys or certificates.

    Raises ValueError for a file without keys, a block that does not load, an RSA key under
    2048 bits, or a key of another type (EC keys are not configured by the protocol).
    """
    rsa_keys: list[RSAPublicKey] = []
    ed_keys: list[Ed25519PublicKey | Ed448PublicKey] = []
    for index, match in enumerate(_PEM_BLOCK.finditer(pem)):
        label, block = match.group(1), match.group(0)
        if label not in (b"CERTIFICATE", b"PUBLIC KEY", b"RSA PUBLIC KEY"):
            raise ValueError(f"PEM block {index} is a {label.decode()}, not a public key")
        try:
            if label == b"CERTIFICATE":
                key: object = x509.load_pem_x509_certificate(block).public_key()
            else:
                key = load_pem_public_key(block)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"PEM block {index} does not load: {exc}") from None
        if isinstance(key, RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                raise ValueError(f"PEM block {index}: RSA key under {MIN_RSA_BITS} bits")
            rsa_keys.append(key)
        elif isinstance(key, Ed25519PublicKey | Ed448PublicKey):
            ed_keys.append(key)
        else:
            raise ValueError(f"PEM block {index}: only RSA and EdDSA public keys are accepted")
    if not rsa_keys and not ed_keys:
        raise ValueError("no public key found in the PEM data")
    return rsa_keys, ed_keys


class TokenVerifier:
    """Verifies access tokens against the configured secret and public keys."""

    def __init__(
        self,
        *,
        hs256_secret: str | None,
        public_keys_pem: bytes | None,
        audience: str = AUDIENCE,
        leeway_s: int = 30,
    ) -> None:
        keys: dict[str, Sequence[Any]] = {}
        if hs256_secret is not None:
            keys["HS256"] = [_check_secret(hs256_secret)]
        if public_keys_pem is not None:
            rsa_keys, ed_keys = load_public_keys(public_keys_pem)
            if rsa_keys:
                keys["RS256"] = rsa_keys
            if ed_keys:
                keys["EdDSA"] = ed_keys
        if not keys:
            raise ValueError("configure an HS256 secret or public keys (or both)")
        self._keys = keys
        self._audience = audience
        self._leeway_s = leeway_s
        self._jwt = jwt.PyJWT(
            options={"require": ["sub", "exp", "aud"], "enforce_minimum_key_length": True}
        )

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms this verifier accepts."""
        return tuple(self._keys)

    def verify(self, token: str) -> Claims:
        """The claims of a valid token; `MessagingError(UNAUTHENTICATED, reason)` otherwise."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise _invalid()
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except (jwt.PyJWTError, ValueError, TypeError):
            raise _invalid() from None
        if not isinstance(alg, str) or not self._keys.get(alg):
            raise _invalid()
        keys = self._keys[alg]
        for key in keys:
            try:
                payload = self._jwt.decode(
                    token, key, algorithms=[alg], audience=self._audience, leeway=self._leeway_s
                )
            except jwt.InvalidSignatureError:
                continue  # another configured key of the same family may have signed it
            except jwt.ExpiredSignatureError:
                raise _expired() from None
            except (jwt.PyJWTError, ValueError, TypeError):
                raise _invalid() from None
            return _claims(payload)
        raise _invalid()


def _numeric_date(value: object) -> int | None:
    """A NumericDate (RFC 7519: integer or not) as whole seconds; None if not a number."""
    if type(value) is int:
        return value
    if type(value) is float and value == value and abs(value) < 2**62:
        return int(value)
    return None


def _claims(payload: dict[str, Any]) -> Claims:
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUBJECT_CHARS:
        raise _invalid()
    exp = _numeric_date(payload.get("exp"))
    iat = _numeric_date(payload.get("iat"))
    if exp is None or ("iat" in payload and iat is None):
        raise _invalid()
    return Claims(sub=sub, exp=exp, iat=iat)


def _invalid() -> MessagingError:
    return MessagingError(ErrorCode.UNAUTHENTICATED, "token_invalid")


def _expired() -> MessagingError:
    return MessagingError(ErrorCode.UNAUTHENTICATED, "token_expired")


def mint_token(secret: str, sub: str, ttl_s: int = 3600, now: float | None = None) -> str:
    """An HS256 token for `sub`, audience `messaging`, valid `ttl_s` seconds from `now`."""
    issued = int(time.time() if now is None else now)
    claims = {"sub": sub, "iat": issued, "exp": issued + ttl_s, "aud": AUDIENCE}
    return jwt.encode(claims, _check_secret(secret), algorithm="HS256")


def bearer_token(header_value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None if absent or another scheme."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token
