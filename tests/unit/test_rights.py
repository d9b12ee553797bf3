"""The query side of data rights without a server: deadlines in working days, receipt
digests, which decision is in force, the write scopes read from the token."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import jwt

from query.auth import CONSENT_WRITE, DATA_DELETE, verifier_from_settings
from query.consent import in_force
from query.deletion_executor import _days, digest
from query.rights import Decision, working_days_after
from vdp.settings import Settings
from vdp.tokens import mint_token

FRIDAY = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


def test_ten_working_days_skip_the_weekends() -> None:
    assert working_days_after(FRIDAY, 10) == FRIDAY + timedelta(days=14)
    assert working_days_after(FRIDAY, 1).weekday() == 0  # Friday + 1 working day = Monday


def test_the_digest_is_the_sha256_of_the_canonical_receipt() -> None:
    receipt = {"b": 1, "a": {"samples": {"driving": 3}}, "remaining": 0}
    canonical = '{"a":{"samples":{"driving":3}},"b":1,"remaining":0}'
    assert digest(receipt) == hashlib.sha256(canonical.encode()).hexdigest()
    assert digest(json.loads(json.dumps(receipt))) == digest(dict(reversed(receipt.items())))


def test_a_scope_touches_each_utc_day_it_overlaps_and_no_more() -> None:
    start = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    assert [d.day for d in _days(start, start + timedelta(hours=1))] == [1]
    assert [d.day for d in _days(start, start + timedelta(hours=2))] == [1, 2]


def decision(id: str, mode: str, start: int, end: int | None) -> Decision:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    expires = None if end is None else t0 + timedelta(days=end)
    return Decision(id, "o", "location", mode, t0 + timedelta(days=start), expires, t0)


def test_the_latest_begun_decision_holds_until_it_expires() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    decisions = [decision("g", "precise", 0, 30), decision("w", "off", 10, None)]
    assert in_force(decisions, "location", t0 + timedelta(days=5)).id == "g"  # type: ignore[union-attr]
    assert in_force(decisions, "location", t0 + timedelta(days=11)).id == "w"  # type: ignore[union-attr]
    assert in_force([decisions[0]], "location", t0 + timedelta(days=30)) is None  # expired


def test_write_scopes_come_from_the_token_scope_apart_from_categories() -> None:
    settings = Settings()
    verifier = verifier_from_settings(settings)
    token = mint_token(settings, "alice", ["driving"])
    assert verifier.verify(token).permissions == frozenset()
    claims = {"sub": "alice", "scope": f"driving {CONSENT_WRITE} {DATA_DELETE} other:thing"}
    now = int(datetime.now(UTC).timestamp())
    claims |= {"aud": settings.query_jwt_audience, "iat": now, "exp": now + 60}
    signed = jwt.encode(claims, settings.query_jwt_key.get_secret_value(), algorithm="HS256")
    principal = verifier.verify(signed)
    assert principal.permissions == {CONSENT_WRITE, DATA_DELETE}
    assert principal.categories == {"driving"}
