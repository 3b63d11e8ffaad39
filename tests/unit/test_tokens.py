"""Bearer tokens: what is accepted (a token signed by the rowcast key, unexpired, unrevoked)
and each way a token can be bad, each refused UNAUTHENTICATED without echoing it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowcast.errors import InvalidArgument, Unauthenticated
from rowcast.security.identity import Role
from rowcast.security.tokens import (
    LEEWAY_S,
    Revoked,
    TokenVerifier,
    issue_token,
    new_signing_key,
    parse_roles,
)

PRIVATE, PUBLIC = new_signing_key()


def test_a_token_proves_its_name_and_roles() -> None:
    issued = issue_token(PRIVATE, "alice", frozenset({Role.ADMIN, Role.READER}), 60)
    identity = TokenVerifier(PUBLIC).verify(issued.token)
    assert (identity.name, identity.roles, identity.token_id) == (
        "alice",
        frozenset({Role.ADMIN, Role.READER}),
        issued.token_id,
    )


def test_an_expired_token_is_refused() -> None:
    old = issue_token(
        PRIVATE, "alice", frozenset({Role.ADMIN}), 10, now=time.time() - 10 - 2 * LEEWAY_S
    )
    with pytest.raises(Unauthenticated, match="expired"):
        TokenVerifier(PUBLIC).verify(old.token)


def test_a_token_that_expires_while_cached_is_refused() -> None:
    now = [time.time()]
    issued = issue_token(PRIVATE, "alice", frozenset({Role.ADMIN}), 5, now=now[0])
    verifier = TokenVerifier(PUBLIC, clock=lambda: now[0])
    verifier.verify(issued.token)
    now[0] += 5 + LEEWAY_S + 1
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(issued.token)


def test_a_token_signed_by_another_key_is_refused() -> None:
    other_private, _ = new_signing_key()
    forged = issue_token(other_private, "alice", frozenset({Role.ADMIN}), 60)
    with pytest.raises(Unauthenticated, match="not valid"):
        TokenVerifier(PUBLIC).verify(forged.token)


def test_alg_none_and_hmac_tokens_are_refused() -> None:
    """Only EdDSA is accepted: no 'none', no HS256 keyed with the public key."""
    claims = {"iss": "rowcast", "sub": "mallory", "roles": ["admin"], "iat": int(time.time()),
              "exp": int(time.time()) + 60, "jti": "x"}  # fmt: skip

    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    unsigned = part({"alg": "none", "typ": "JWT"}) + "." + part(claims) + "."
    signing_input = part({"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
    mac = hmac.new(PUBLIC, signing_input.encode(), hashlib.sha256).digest()
    hs = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    for token in (unsigned, hs):
        with pytest.raises(Unauthenticated):
            TokenVerifier(PUBLIC).verify(token)


def test_a_token_with_its_roles_edited_is_refused() -> None:
    issued = issue_token(PRIVATE, "bob", frozenset({Role.READER}), 60)
    head, body, sig = issued.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["roles"] = ["admin"]
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthenticated):
        TokenVerifier(PUBLIC).verify(f"{head}.{edited}.{sig}")


def test_revoked_by_id_or_by_name_is_refused_even_when_cached() -> None:
    issued = issue_token(PRIVATE, "carol", frozenset({Role.PREDICTOR}), 60, now=time.time() - 5)
    revoked = [Revoked()]
    verifier = TokenVerifier(PUBLIC, lambda: revoked[0])
    verifier.verify(issued.token)
    revoked[0] = Revoked([issued.token_id])
    with pytest.raises(Unauthenticated, match="revoked"):
        verifier.verify(issued.token)
    revoked[0] = Revoked(names={"carol": int(time.time())})
    with pytest.raises(Unauthenticated, match="revoked"):
        verifier.verify(issued.token)
    later = issue_token(PRIVATE, "carol", frozenset({Role.PREDICTOR}), 60, now=time.time() + 2)
    assert verifier.verify(later.token).name == "carol"  # issued after the revocation


@given(st.text(max_size=300))
def test_garbage_is_unauthenticated_and_never_echoed(garbage: str) -> None:
    try:
        TokenVerifier(PUBLIC).verify(garbage)
    except Unauthenticated as exc:
        assert len(garbage) < 8 or garbage not in exc.message
    else:
        raise AssertionError("garbage accepted")


def test_roles_and_names_are_checked_when_issuing() -> None:
    assert parse_roles(["admin,reader", "auditor"]) == frozenset(
        {Role.ADMIN, Role.READER, Role.AUDITOR}
    )
    with pytest.raises(InvalidArgument, match="not a role"):
        parse_roles(["root"])
    with pytest.raises(InvalidArgument):
        parse_roles([""])
    with pytest.raises(InvalidArgument, match="name"):
        issue_token(PRIVATE, "a b", frozenset({Role.ADMIN}), 60)
    with pytest.raises(InvalidArgument, match="ttl"):
        issue_token(PRIVATE, "ab", frozenset({Role.ADMIN}), 0)
