"""The one way the platform writes a moment for people and clients: ISO 8601 in UTC, with
milliseconds, `T` and `Z` (`2026-12-01T12:41:34.000Z`). The owner API's JSON, its CSV and
JSON Lines exports, incident reports, `vdp dlq show` and `vdp demo` all write it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(moment: datetime) -> str:
    """`moment` in UTC; a naive one is taken as UTC (ClickHouse hands back naive UTC)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_ms(millis: int) -> str:
    """Epoch milliseconds (a frame's event time) as `iso` writes them."""
    return iso(_EPOCH + timedelta(milliseconds=millis))
