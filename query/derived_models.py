"""Response shapes of the derived endpoints (for the OpenAPI schema; routes build JSON)."""

from __future__ import annotations

from pydantic import BaseModel, Field

WITHHELD = Field(
    description="categories the token lacks whose figures are left out (null), e.g. places "
    "without `location`"
)


class Place(BaseModel):
    lat: float
    lon: float


class TripOut(BaseModel):
    start: str = Field(description="first driving sample")
    end: str = Field(description="last driving sample")
    complete: bool = Field(description="false while the car may still be on this trip")
    duration_s: float
    distance_km: float | None = Field(description="odometer (vehicle_state)")
    avg_speed_kmh: float | None = Field(description="distance over duration (vehicle_state)")
    max_speed_kmh: float | None
    energy_wh: float | None = Field(description="battery energy used (battery_charging)")
    efficiency_wh_per_km: float | None = Field(
        description="energy over distance (battery_charging, vehicle_state)"
    )
    start_place: Place | None = Field(description="location, as stored under its consent")
    end_place: Place | None
    hard_brakes: int = Field(description="episodes beyond 6 m/s² of deceleration")
    abs_events: int
    esc_events: int


class TripsOut(BaseModel):
    vin: str
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    withheld: list[str] = WITHHELD
    trips: list[TripOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class SessionOut(BaseModel):
    start: str = Field(description="first charging sample")
    end: str = Field(description="when charging was seen to have stopped")
    complete: bool = Field(description="false while the car may still be charging")
    duration_s: float
    soc_start: float | None = Field(description="state of charge (%)")
    soc_end: float | None
    energy_kwh: float = Field(description="energy into the pack")
    peak_kw: float
    current: str = Field(description="AC or DC (DC above 22 kW)")
    cost: float = Field(description="at the time-of-use tariff (VDP_TARIFF_*), in `currency`")
    capacity_kwh: float | None = Field(description="usable capacity this session implies")
    place: Place | None = Field(description="location, as stored under its consent")


class SessionsOut(BaseModel):
    vin: str
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    currency: str
    withheld: list[str] = WITHHELD
    sessions: list[SessionOut]
    next_cursor: str | None


class MonthOut(BaseModel):
    month: str = Field(description="YYYY-MM (UTC), by the start of each trip or session")
    trips: int | None
    driving_s: float | None
    distance_km: float | None
    energy_wh: float | None
    efficiency_wh_per_km: float | None
    charging_sessions: int | None
    charging_s: float | None
    charged_kwh: float | None
    charging_cost: float | None


class MonthlyOut(BaseModel):
    vin: str
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    currency: str
    withheld: list[str] = WITHHELD
    months: list[MonthOut]


class CapacityOut(BaseModel):
    time: str = Field(description="start of the charging session it comes from")
    capacity_kwh: float


class CapacityMonthOut(BaseModel):
    month: str
    median_kwh: float
    sessions: int


class DrainOut(BaseModel):
    month: str
    parked_hours: float = Field(description="parked and not charging")
    soc_lost_pct: float
    pct_per_day: float = Field(description="state of charge lost per day parked")


class BatteryOut(BaseModel):
    vin: str
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    capacity: list[CapacityOut] = Field(
        description="usable capacity estimated per session: energy added per 100 % of charge"
    )
    capacity_by_month: list[CapacityMonthOut] = Field(description="the trend: median per month")
    idle_drain: list[DrainOut]
