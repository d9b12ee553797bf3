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
    ],
)
def test_tokens_with_bad_claims_are_refused(changes: dict[str, object]) -> None:
    settings = _settings(query_jwt_issuer="owner-app")
    claims: dict[str, object] = {
        "sub": "a",
        "scope": "driving",
        "aud": "vdp-owner-api",
        "iss": "owner-app",
        "exp": int(time.time()) + 60,
    }
    if "exp" in changes:
        changes = {"exp": int(time.time()) + int(changes["exp"])}  # type: ignore[call-overload]
    token = jwt.encode(claims | changes, SECRET, "HS256")
    with pytest.raises(TokenError):
        verifier_from_settings(settings).verify(token)


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


def test_short_hs_secrets_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        verifier_from_settings(Settings(query_jwt_key="short"))  # type: ignore[arg-type]


def test_minting_refuses_unknown_categories() -> None:
    with pytest.raises(ValueError, match="unknown categories"):
        mint_token(_settings(), "a", ["driving", "telepathy"])


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
