"""Synthetic data for `vdp bench-query`, generated inside ClickHouse (INSERT … SELECT).

Per car: a month of `Vehicle.Speed` at one sample a minute plus one hour of 1 Hz speed and
state of charge, ~50,400 rows; the first car also gets the whole month at 1 Hz, so the
downsampling benchmark aggregates 2.6 million rows into 1-minute buckets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from schemas.vin import random_vin

MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)
MONTH = timedelta(days=30)
HOUR_START = MONTH_START + timedelta(days=10, hours=8)
_MINUTES = 30 * 24 * 60
_HOUR = 3600
PER_CAR = _MINUTES + 2 * _HOUR


@dataclass(frozen=True)
class Fleet:
    vins: list[str]

    def owner(self, index: int) -> str:
        return f"bench-owner-{index:04d}"


def fleet(cars: int, seed: int = 7) -> Fleet:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    return Fleet([random_vin(rng) for _ in range(cars)])


_SAMPLE_COLUMNS = "owner_id, vin, category, signal, event_time, seq, value_num, sensitivity"


def seed(client: Client, cars: int) -> int:
    """Fill `samples` and `ownership_intervals` for `cars` cars; the rows inserted."""
    data = fleet(cars)
    params = {"vins": data.vins, "start": MONTH_START, "hour": HOUR_START}
    client.insert(
        "ownership_intervals",
        [[vin, data.owner(i), "delivery", MONTH_START, i] for i, vin in enumerate(data.vins)],
        column_names=["vin", "owner_id", "kind", "valid_from", "event_offset"],
    )
    # Per car, row k < _MINUTES is the per-minute speed; after it two 1 Hz hour series.
    car = "intDiv(number, {per:UInt64})"
    k = "number % {per:UInt64}"
    in_hour = f"({k} >= {_MINUTES})"
    hour_k = f"({k} - {_MINUTES})"
    client.command(
        f"INSERT INTO samples ({_SAMPLE_COLUMNS}) "  # noqa: S608 - constants only
        f"SELECT concat('bench-owner-', leftPad(toString({car}), 4, '0')), "
        f"{{vins:Array(String)}}[{car} + 1], "
        f"if({in_hour} AND {hour_k} >= {_HOUR}, 'battery_charging', 'driving'), "
        f"if({in_hour} AND {hour_k} >= {_HOUR}, "
        "'Vehicle.Powertrain.TractionBattery.StateOfCharge.Current', 'Vehicle.Speed'), "
        f"if({in_hour}, {{hour:DateTime64(3,'UTC')}} + toIntervalSecond({hour_k} % {_HOUR}), "
        f"{{start:DateTime64(3,'UTC')}} + toIntervalMinute({k})), "
        f"{k}, 50 + 40 * sin(number / 300), 'personal' "
        f"FROM numbers({{rows:UInt64}})",
        parameters=params | {"per": PER_CAR, "rows": PER_CAR * cars},
        settings={"max_insert_threads": 2},
    )
    dense = _MINUTES * 60
    client.command(
        f"INSERT INTO samples ({_SAMPLE_COLUMNS}) "  # noqa: S608 - constants only
        "SELECT {owner:String}, {vin:String}, 'driving', 'Vehicle.Speed', "
        "{start:DateTime64(3,'UTC')} + toIntervalSecond(number), 10000000 + number, "
        "60 + 30 * sin(number / 120), 'personal' FROM numbers({rows:UInt64})",
        parameters={
            "owner": data.owner(0),
            "vin": data.vins[0],
            "start": MONTH_START,
            "rows": dense,
        },
    )
    return PER_CAR * cars + dense
