"""Bearer tokens: JWTs signed with Ed25519 (EdDSA), the one algorithm accepted.

Why signed tokens, not opaque ones looked up in HBase: a prediction server verifies a token in
memory (no store call on the hot path, and serving goes on while HBase is down), and only the
machine holding `token-signing.key` can issue one; servers hold just the public key. The price,
revocation before expiry, is paid by a small revocation list in HBase that every server re-reads
every few seconds (security/revocations.py). Claims: iss=rowcast, sub (the name), roles, iat,
exp, jti (the token's id, what `rowcast auth revoke --token-id` names).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rowcast.errors import InvalidArgument, Unauthenticated
from rowcast.security.identity import ROLE_NAMES, Identity, Role

ALGORITHM = "EdDSA"
ISSUER = "rowcast"
#: Clock skew tolerated between the issuing machine and the servers, in seconds.
LEEWAY_S = 30
MAX_TTL_S = 366 * 86_400
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
#: Verified tokens remembered per server (the signature check costs ~100 us; a lookup ~0.1 us).
CACHE_SIZE = 10_000


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise InvalidArgument.field(
            "name", "a letter or digit, then up to 63 letters, digits, '.', '_', '@' or '-'"
        )
    return name


def parse_roles(roles: Iterable[str]) -> frozenset[Role]:
    parsed: set[Role] = set()
    for raw in roles:
        for part in raw.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in ROLE_NAMES:
                raise InvalidArgument.field(
                    "role", f"{name[:40]!r} is not a role (one of {', '.join(ROLE_NAMES)})"
                )
            parsed.add(Role(name))
    if not parsed:
        raise InvalidArgument.field("role", f"at least one of {', '.join(ROLE_NAMES)}")
    return frozenset(parsed)


def new_signing_key() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair as (private PEM, public PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: str
    name: str
    roles: frozenset[Role]
    expires_at: int


def issue_token(
    private_pem: bytes, name: str, roles: frozenset[Role], ttl_s: int, *, now: float | None = None
) -> IssuedToken:
    """A signed token for `name` with `roles`, valid for ttl_s seconds."""
    check_name(name)
    if not 0 < ttl_s <= MAX_TTL_S:
        raise InvalidArgument.field("ttl", f"between 1 s and {MAX_TTL_S // 86_400} days")
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidArgument.field("signing key", "is not an Ed25519 private key")
    issued = int(time.time() if now is None else now)
    token_id = uuid.uuid4().hex
    claims = {
        "iss": ISSUER,
        "sub": name,
        "roles": sorted(r.value for r in roles),
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": token_id,
    }
    token = jwt.encode(claims, key, algorithm=ALGORITHM)
    return IssuedToken(token, token_id, name, roles, issued + ttl_s)


class Revoked:
    """What is revoked: token ids, and names whose tokens issued up to a time are void."""

    def __init__(self, token_ids: Iterable[str] = (), names: dict[str, int] | None = None) -> None:
        self.token_ids = frozenset(token_ids)
        #: name -> seconds: tokens of the name issued at or before it are revoked.
        self.names = dict(names or {})

    def revokes(self, token_id: str, name: str, issued_at: int) -> bool:
        if token_id in self.token_ids:
            return True
        before = self.names.get(name)
        return before is not None and issued_at <= before


@dataclass(frozen=True)
class _Verified:
    identity: Identity
    issued_at: int
    expires_at: int


class TokenVerifier:
    """Checks bearer tokens against the public key, the clock and the revocation list."""

    def __init__(
        self,
        public_pem: bytes,
        revoked: Callable[[], Revoked] = Revoked,
        clock: Callable[[], float] = time.time,
    ) -> None:
        key = serialization.load_pem_public_key(public_pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the token verification key is not an Ed25519 public key")
        self._key = key
        self._revoked = revoked
        self._clock = clock
        self._cache: dict[str, _Verified] = {}

    @classmethod
    def from_file(cls, path: Path, revoked: Callable[[], Revoked] = Revoked) -> TokenVerifier:
        return cls(path.read_bytes(), revoked)

    def verify(self, token: str) -> Identity:
        """The identity a token proves; Unauthenticated when it is malformed, forged, expired
        or revoked (the message says which, never echoing the token)."""
        known = self._cache.get(token)
        if known is None:
            known = self._decode(token)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[token] = known
        if self._clock() > known.expires_at + LEEWAY_S:
            self._cache.pop(token, None)
            raise Unauthenticated("the token has expired: ask for a new one")
        identity = known.identity
        if self._revoked().revokes(identity.token_id, identity.name, known.issued_at):
            raise Unauthenticated(f"the token {identity.token_id} of {identity.name!r} is revoked")
        return identity

    def _decode(self, token: str) -> _Verified:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "sub", "jti", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired: ask for a new one") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid ({type(exc).__name__})") from None
        try:
            roles = frozenset(Role(r) for r in claims.get("roles", []))
            identity = Identity(
                name=str(claims["sub"]), roles=roles, via="token", token_id=str(claims["jti"])
            )
            return _Verified(identity, int(claims["iat"]), int(claims["exp"]))
        except (ValueError, TypeError) as exc:
            raise Unauthenticated(f"the token's claims are malformed ({exc})") from None
