"""Response shapes of the owner API (they make the OpenAPI schema; routes build JSON directly)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from vdp import times


def iso(moment: datetime | None) -> str | None:
    """The platform's one time format (`vdp.times.iso`), None staying None."""
    return None if moment is None else times.iso(moment)


class PeriodOut(BaseModel):
    kind: str = Field(description="event that started the period: delivery, transfer, return")
    start: str
    end: str | None = Field(description="null while the owner still owns the car")


class VehicleOut(BaseModel):
    vin: str
    periods: list[PeriodOut]


class VehiclesOut(BaseModel):
    vehicles: list[VehicleOut]


class SignalOut(BaseModel):
    name: str
    type: str
    unit: str | None
    category: str
    sensitivity: str
    description: str
    min: float | None
    max: float | None


class CatalogOut(BaseModel):
    version: int
    categories: list[str]
    signals: list[SignalOut]


class CoverageOut(BaseModel):
    category: str
    first: str
    last: str
    samples: int
    signals: int


class VehicleCoverageOut(BaseModel):
    vin: str
    categories: list[CoverageOut]


class SampleOut(BaseModel):
    time: str
    category: str
    signal: str
    value: float | None = Field(description="numeric and boolean (0/1) signals")
    text: str | None = Field(description="string signals")
    seq: int
    quality: int


class BucketOut(BaseModel):
    signal: str
    time: str = Field(description="bucket start")
    min: float | None
    avg: float | None
    max: float | None
    count: int


class BucketColumnsOut(BaseModel):
    signal: str
    buckets: int = Field(description="how many buckets: the length of each array")
    time: list[int] = Field(description="bucket starts in Unix seconds, ascending")
    min: list[float | None]
    avg: list[float | None]
    max: list[float | None]
    count: list[int]


class SeriesOut(BaseModel):
    vin: str
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    categories: list[str]
    resolution: int | None = Field(description="bucket seconds; null for raw rows")
    rows: list[SampleOut] = Field(description="raw rows (no resolution), one page")
    buckets: list[BucketOut] = Field(description="downsampled buckets (with resolution)")
    columns: list[BucketColumnsOut] = Field(
        description="the same buckets as arrays per signal (with resolution and shape=columns)"
    )
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class EventOut(BaseModel):
    time: str = Field(description="start of the episode (or the moment of a one-off event)")
    end: str = Field(description="last moment of the episode; equals `time` for a moment")
    category: str
    kind: str
    value: float | None = Field(description="the value that raised it")
    peak: float | None = Field(description="the extreme value during the episode")
    detail: str
    seq: int


class EventsOut(BaseModel):
    vin: str
    events: list[EventOut]
    next_cursor: str | None


class AccessOut(BaseModel):
    at: str
    request_id: str
    endpoint: str
    vin: str
    categories: list[str]
    start: str | None = Field(alias="from")
    end: str | None = Field(alias="to")
    rows: int = Field(description="data rows delivered (an export cut short: those sent)")
    bytes: int = Field(description="response body bytes handed to the client")
    aborted: bool = Field(description="the client went away before the response was complete")
    status: int
    duration_ms: int


class AccessLogOut(BaseModel):
    entries: list[AccessOut]
    next_cursor: str | None = Field(description="pass as `cursor` for older entries")


class HealthOut(BaseModel):
    status: str
    detail: dict[str, Any] = Field(default_factory=dict)
