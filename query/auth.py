"""Owner tokens: JWTs the owner app issues for a signed-in owner.

Claims: `sub` = owner id, `scope` = space-separated data categories the owner allowed
(OAuth 2 style, e.g. "driving location"), `aud`, `exp` (required, a number: PyJWT alone
would take the string "1900000000"), `iat`, `iss` (checked when configured; production
requires it configured). A token may live at most `VDP_QUERY_JWT_MAX_LIFETIME_SECONDS`, so
a leaked one cannot be good for years. Only the one configured algorithm is accepted, so
`alg: none` and HS/RS key confusion are refused by construction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from schemas.catalog import CATEGORIES
from vdp.errors import ConfigurationError
from vdp.settings import DEV_JWT_SECRET, Settings

log = logging.getLogger("vdp.query.auth")

_REQUIRED = ["exp", "sub", "aud", "scope"]
# Scope words that allow writes, apart from the data categories (which allow reads).
CONSENT_WRITE = "consent:write"  # grant, change, withdraw a category's consent
DATA_DELETE = "data:delete"  # ask for data to be deleted
PERMISSIONS = frozenset({CONSENT_WRITE, DATA_DELETE})


class TokenError(Exception):
    """The token is missing, malformed, unsigned, expired or not meant for us."""


@dataclass(frozen=True)
class Principal:
    """Who is asking (the owner) and which data categories they allowed."""

    owner_id: str
    categories: frozenset[str]
    token_id: str = ""
    permissions: frozenset[str] = frozenset()  # of PERMISSIONS: what the owner may change


@dataclass(frozen=True)
class TokenVerifier:
    algorithm: str
    key: Any
    audience: str
    issuer: str | None
    max_lifetime_s: int = 86_400

    def verify(self, token: str, now: float | None = None) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED + (["iss"] if self.issuer else [])},
            )
        except jwt.PyJWTError as e:
            raise TokenError(f"invalid token: {e}") from e
        self._check_lifetime(claims, time.time() if now is None else now)
        owner, scope = claims.get("sub"), claims.get("scope")
        if not isinstance(owner, str) or not owner.strip():
            raise TokenError("invalid token: empty subject")
        if not isinstance(scope, str):
            raise TokenError("invalid token: scope must be a space-separated string")
        # Unknown scope words are ignored rather than refused: the owner app may carry
        # scopes meant for other services in the same token.
        categories = frozenset(scope.split()) & frozenset(CATEGORIES)
        permissions = frozenset(scope.split()) & PERMISSIONS
        return Principal(owner, categories, str(claims.get("jti", "")), permissions)

    def _check_lifetime(self, claims: dict[str, Any], now: float) -> None:
        exp, iat = claims["exp"], claims.get("iat", now)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (exp, iat)):
            raise TokenError("invalid token: exp and iat must be numbers (seconds since 1970)")
        # Both: without iat a token could claim a short life and still expire in years.
        if max(exp - iat, exp - now) > self.max_lifetime_s:
            raise TokenError(
                f"invalid token: it lives longer than the limit of {self.max_lifetime_s} s"
            )


def _public_key(text: str) -> str:
    if "-----BEGIN" in text:
        return text
    path = Path(text)
    if not path.is_file():
        raise ConfigurationError("VDP_QUERY_JWT_KEY must be a PEM public key or a path to one")
    return path.read_text(encoding="utf-8")


def verifier_from_settings(settings: Settings) -> TokenVerifier:
    """The verifier, after refusing unsafe configurations (checked once at start-up)."""
    algorithm = settings.query_jwt_algorithm
    secret = settings.query_jwt_key.get_secret_value()
    if algorithm.startswith("HS"):
        if secret == DEV_JWT_SECRET:
            if settings.query_environment != "local":
                raise ConfigurationError(
                    "VDP_QUERY_JWT_KEY is the development secret; set a real one "
                    "(VDP_QUERY_ENVIRONMENT=production refuses it)"
                )
            log.warning(
                "!!! the owner query service uses the DEVELOPMENT token secret: anyone can "
                "mint tokens. Set VDP_QUERY_JWT_KEY (and VDP_QUERY_ENVIRONMENT=production) "
                "before real owners use it !!!"
            )
        if len(secret) < 32:
            raise ConfigurationError("VDP_QUERY_JWT_KEY: an HS* secret needs 32+ characters")
        key: Any = secret
    else:
        key = _public_key(secret)
    if settings.query_environment == "production" and not settings.query_jwt_issuer:
        raise ConfigurationError(
            "VDP_QUERY_JWT_ISSUER is empty: in production tokens must name their issuer"
        )
    return TokenVerifier(
        algorithm,
        key,
        settings.query_jwt_audience,
        settings.query_jwt_issuer or None,
        settings.query_jwt_max_lifetime_seconds,
    )
