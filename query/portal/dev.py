"""Development sign-in: pick a demo owner and get a token, only while the service runs with
the development secret (anyone can mint tokens then anyway, with `vdp token`). In
production the owner app's own login issues the token and these endpoints answer 404."""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client

from schemas.catalog import CATEGORIES
from vdp.settings import DEV_JWT_SECRET, Settings

# Every category and both write permissions: a demo owner can try every page.
DEMO_SCOPES = (*CATEGORIES, "consent:write", "data:delete")
DEMO_TTL_SECONDS = 3600
_SHOWN = 12


def development_secret(settings: Settings) -> bool:
    """Whether tokens are signed with the published development secret (the service only
    starts so with VDP_QUERY_ENVIRONMENT=local; `query/auth.py` refuses it elsewhere)."""
    return (
        settings.query_jwt_algorithm.startswith("HS")
        and settings.query_jwt_key.get_secret_value() == DEV_JWT_SECRET
    )


def demo_owners(client: Client) -> list[dict[str, Any]]:
    """Owners of the data, those whose cars had a hard-braking, ABS, ESC or emergency-brake
    episode first (the incident view has something to show), each with their cars."""
    owners = client.query(
        "SELECT owner_id, groupUniqArray(vin) AS vins, max(valid_to) AS until "
        "FROM ownership_intervals FINAL WHERE owner_id != '' "
        "GROUP BY owner_id ORDER BY until DESC, owner_id LIMIT 500"
    ).result_rows
    incidents: dict[str, int] = {
        owner: int(n)
        for owner, n in client.query(
            "SELECT owner_id, count() FROM incidents FINAL "
            "WHERE owner_id != '' AND kind IN ('hard_braking', 'abs', 'esc', 'emergency_brake') "
            "GROUP BY owner_id"
        ).result_rows
    }
    found = [
        {"owner_id": owner, "vins": sorted(vins), "incidents": incidents.get(owner, 0)}
        for owner, vins, _ in owners
    ]
    found.sort(key=lambda o: -o["incidents"])  # stable: the newest owners next
    return found[:_SHOWN]
