"""Catalog documents for tests that add a data category (no test of their own here)."""

from __future__ import annotations

import json
from typing import Any

from schemas.catalog import CATALOG_PATH


def with_towing() -> dict[str, Any]:
    """The real catalog document plus a `towing` category (60 days) and one signal in it."""
    document: dict[str, Any] = json.loads(CATALOG_PATH.read_text())
    document["categories"].append({"name": "towing", "retention_days": 60})
    document["signals"].append(
        {
            "name": "Vehicle.Trailer.IsConnected",
            "type": "boolean",
            "clickhouse_type": "Bool",
            "category": "towing",
            "sensitivity": "personal",
        }
    )
    return document
