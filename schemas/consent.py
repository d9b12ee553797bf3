"""A consent decision as the consent topic carries it (`avro/consent_event`): one owner's
decision about one data category of a car, its times in epoch milliseconds. The simulator
makes them, the processors' consent book applies them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    id: str
    owner_id: str
    category: str
    mode: str  # off | on | precise | coarse
    effective_from: int  # ms, inclusive
    expires_at: int | None  # ms, exclusive; None for off
    recorded_at: int

    def record(self) -> dict[str, Any]:
        """The decision as a consent event's record."""
        return {"id": self.id, "owner_id": self.owner_id, "category": self.category,
                "mode": self.mode, "effective_from": self.effective_from,
                "expires_at": self.expires_at, "recorded_at": self.recorded_at}  # fmt: skip

    def row(self, vin: str) -> tuple[Any, ...]:
        """The decision as a `consent_decisions` row, in the table contract's order."""
        return (vin, self.id, self.owner_id, self.category, self.mode, self.effective_from,
                self.expires_at, self.recorded_at)  # fmt: skip
