"""Owner tokens as the owner app issues them: the claims the query service verifies
(`query/auth.py`), minted here for development, the demo and tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from schemas.catalog import CATEGORIES
from vdp.settings import Settings


def mint_token(
    settings: Settings,
    owner_id: str,
    categories: list[str],
    ttl_seconds: int = 3600,
    *,
    key: Any = None,
    now: float | None = None,
    permissions: tuple[str, ...] = (),
) -> str:
    """A signed owner token (development and tests; the owner app issues real ones).

    `key` defaults to the configured one, which for HS* is the shared secret; for RS*/ES*
    the private key must be given. Refuses what the service would always refuse: a blank
    owner, a lifetime of zero or beyond `VDP_QUERY_JWT_MAX_LIFETIME_SECONDS`.
    `permissions` are the write scopes beside the categories (`consent:write`, `data:delete`).
    """
    if not owner_id.strip():
        raise ValueError("the owner id is empty; the service refuses a token without one")
    limit = settings.query_jwt_max_lifetime_seconds
    if not 0 < ttl_seconds <= limit:
        raise ValueError(
            f"the lifetime must be 1..{limit} s (VDP_QUERY_JWT_MAX_LIFETIME_SECONDS), "
            f"got {ttl_seconds}"
        )
    unknown = set(categories) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories {sorted(unknown)}; known: {', '.join(CATEGORIES)}")
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": owner_id,
        "scope": " ".join([*categories, *permissions]),
        "aud": settings.query_jwt_audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if settings.query_jwt_issuer:
        claims["iss"] = settings.query_jwt_issuer
    signing_key = key if key is not None else settings.query_jwt_key.get_secret_value()
    return jwt.encode(claims, signing_key, algorithm=settings.query_jwt_algorithm)
