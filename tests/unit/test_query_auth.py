"""Owner tokens: only a well-signed, unexpired token for our audience names an owner."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from query.auth import TokenError, verifier_from_settings
from vdp.errors import ConfigurationError
from vdp.settings import Settings
from vdp.tokens import mint_token

SECRET = "a-real-secret-that-is-long-enough-0123456789"


def _settings(**changes: object) -> Settings:
    return Settings(query_jwt_key=SECRET, **changes)  # type: ignore[arg-type]


def test_a_minted_token_names_its_owner_and_categories() -> None:
    settings = _settings()
    principal = verifier_from_settings(settings).verify(
        mint_token(settings, "alice", ["driving", "location"])
    )
    assert principal.owner_id == "alice"
    assert principal.categories == {"driving", "location"}


def test_unknown_scope_words_grant_nothing() -> None:
    settings = _settings()
    claims = {
        "sub": "a",
        "scope": "driving openid everything",
        "aud": "vdp-owner-api",
        "exp": int(time.time()) + 60,
    }
    principal = verifier_from_settings(settings).verify(jwt.encode(claims, SECRET, "HS256"))
    assert principal.categories == {"driving"}


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": -10},
        {"aud": "other"},
        {"sub": ""},
        {"scope": ["driving"]},
        {"iss": "someone"},
        {"iss": None},  # configured, so required
        {"exp": "in 60 s"},  # a numeric string: PyJWT alone takes it
        {"iat": "now"},
        {"exp": 86_400 + 60},  # beyond the maximum lifetime, and no iat
        {"exp": 3_600, "iat": -86_400},  # issued a day ago for 25 h
    ],
)
def test_tokens_with_bad_claims_are_refused(changes: dict[str, object]) -> None:
    settings = _settings(query_jwt_issuer="owner-app")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "a",
        "scope": "driving",
        "aud": "vdp-owner-api",
        "iss": "owner-app",
        "exp": now + 60,
    }
    claims |= changes
    for name in ("exp", "iat"):
        if isinstance(changes.get(name), int):
            claims[name] = now + int(changes[name])  # type: ignore[call-overload]
        elif changes.get(name) == "in 60 s":
            claims[name] = str(now + 60)
    claims = {k: v for k, v in claims.items() if v is not None}
    token = jwt.encode(claims, SECRET, "HS256")
    with pytest.raises(TokenError):
        verifier_from_settings(settings).verify(token)


def test_a_token_may_live_exactly_the_maximum_lifetime() -> None:
    settings = _settings(query_jwt_max_lifetime_seconds=600)
    verifier = verifier_from_settings(settings)
    now = time.time()
    assert verifier.verify(mint_token(settings, "a", ["driving"], 600, now=now), now).owner_id
    claims = {"sub": "a", "scope": "driving", "aud": "vdp-owner-api", "exp": int(now) + 601}
    with pytest.raises(TokenError, match="longer than the limit of 600 s"):
        verifier.verify(jwt.encode(claims, SECRET, "HS256"), now)


def test_unsigned_and_other_algorithm_tokens_are_refused() -> None:
    verifier = verifier_from_settings(_settings())
    claims = {"sub": "a", "scope": "driving", "aud": "vdp-owner-api", "exp": int(time.time()) + 60}
    for token in (jwt.encode(claims, None, "none"), jwt.encode(claims, SECRET * 2, "HS512")):
        with pytest.raises(TokenError):
            verifier.verify(token)


def test_es256_public_key_from_a_file_and_no_hs_key_confusion(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    (tmp_path / "owner-app.pem").write_text(public_pem)
    settings = Settings(
        query_jwt_algorithm="ES256",
        query_jwt_key=str(tmp_path / "owner-app.pem"),  # type: ignore[arg-type]
    )
    verifier = verifier_from_settings(settings)
    token = mint_token(settings, "bob", ["cabin"], key=private)
    assert verifier.verify(token).owner_id == "bob"
    claims = {"sub": "bob", "scope": "cabin", "aud": "vdp-owner-api", "exp": int(time.time()) + 60}
    with pytest.raises(TokenError):  # the public key used as an HMAC secret
        verifier.verify(_hs256_by_hand(claims, public_pem.encode()))


def _hs256_by_hand(claims: dict[str, object], key: bytes) -> str:
    """What an attacker sends (PyJWT itself refuses to sign with a PEM as HMAC key)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def test_the_dev_secret_is_refused_in_production_and_warned_about_locally(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ConfigurationError):
        verifier_from_settings(Settings(query_environment="production"))
    verifier_from_settings(Settings())
    assert "DEVELOPMENT token secret" in caplog.text


def test_production_requires_an_issuer() -> None:
    production = {"query_environment": "production", "query_cursor_key": "k" * 32}
    with pytest.raises(ConfigurationError, match="VDP_QUERY_JWT_ISSUER"):
        verifier_from_settings(_settings(**production))
    verifier = verifier_from_settings(_settings(query_jwt_issuer="owner-app", **production))
    assert verifier.issuer == "owner-app"


def test_short_hs_secrets_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        verifier_from_settings(Settings(query_jwt_key="short"))  # type: ignore[arg-type]


def test_minting_refuses_unknown_categories() -> None:
    with pytest.raises(ValueError, match="unknown categories"):
        mint_token(_settings(), "a", ["driving", "telepathy"])


@pytest.mark.parametrize(("owner", "ttl"), [("", 60), ("  ", 60), ("a", 0), ("a", 86_401)])
def test_minting_refuses_what_the_service_would_always_refuse(owner: str, ttl: int) -> None:
    with pytest.raises(ValueError, match="owner id is empty|lifetime must be"):
        mint_token(_settings(), owner, ["driving"], ttl)


def test_vdp_token_prints_a_token_and_warns_it_is_a_dev_tool(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vdp.cli import main

    assert main(["token", "--owner", "alice", "--categories", "driving,cabin"]) == 0
    out = capsys.readouterr()
    assert "DEVELOPMENT TOOL" in out.err
    claims = jwt.decode(out.out.strip(), options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["scope"] == "driving cabin"
    assert main(["token", "--owner", "alice", "--categories", "telepathy"]) == 2
    assert main(["token", "--owner", "", "--categories", "driving"]) == 2
    assert "owner id is empty" in capsys.readouterr().err
    argv = ["token", "--owner", "alice", "--categories", "driving"]
    assert main([*argv, "--permissions", "consent:write,data:delete"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
    assert claims["scope"] == "driving consent:write data:delete"
    assert main([*argv, "--permissions", "data:write"]) == 2
    assert "unknown permissions ['data:write']" in capsys.readouterr().err
