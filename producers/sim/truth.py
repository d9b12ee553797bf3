"""What really happened to each car: its trips and charging sessions, from the simulator's
own state, for tests to compare with what the platform derived from the frames.

Recorded only when asked for (a run with a manifest), and read-only: it never draws a
random number or changes a car, so a run sends the same bytes with or without it.

- A trip runs from the first tick a car drives to the tick it parks. Its times are those
  of its first and last driving frame; its odometer and place at the start are the car's
  before the first step, at the end those after the last one (the parking frame reports
  them); its energy is the pack energy of every step (power × dt); hard brakes are the
  emergency stops begun during it.
- A charging session runs from the parked report at which the car charges to the report
  at which it has stopped; its energy is what the state of charge gained (the pack is
  `PACK_WH`, so that is also the capacity a platform should estimate from it).
Still under way at the end of the run: `end_ms` is None.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from producers.sim.fleetstep import Array, FleetState
from producers.sim.physics import PACK_WH

_SECONDS_PER_HOUR = 3600.0


class Truth:
    def __init__(self, vins: list[str]) -> None:
        self.vins = vins
        self.trips: dict[str, list[dict[str, Any]]] = {v: [] for v in vins}
        self.sessions: dict[str, list[dict[str, Any]]] = {v: [] for v in vins}
        self._trip: list[dict[str, Any] | None] = [None] * len(vins)
        self._session: list[dict[str, Any] | None] = [None] * len(vins)
        self._energy_wh = np.zeros(len(vins))
        self._braking = np.zeros(len(vins), dtype=bool)

    # -- driving -------------------------------------------------------------------------
    def before_step(self, state: FleetState, driving: Array) -> None:
        """Cars about to step: a trip begins for those not on one yet."""
        v = state.v
        for i in driving.tolist():
            if self._trip[i] is None:
                self._trip[i] = {
                    "start_ms": None,
                    "end_ms": None,
                    "odometer_start_km": v["odometer_km"][i].item(),
                    "start": [v["lat"][i].item(), v["lon"][i].item()],
                    "hard_brakes": 0,
                }
                self._energy_wh[i] = 0.0
        self._braking[driving] = v["hard_brake_left"][driving] > 0

    def after_step(
        self, state: FleetState, driving: Array, parked: Array, now: int, dt: float
    ) -> None:
        """The step's energy, emergency stops begun, frames sent; the trips of cars that
        parked end."""
        v = state.v
        self._energy_wh[driving] -= v["power_w"][driving] * dt / _SECONDS_PER_HOUR
        begun = driving[(v["hard_brake_left"][driving] > 0) & ~self._braking[driving]]
        for i in begun.tolist():
            trip = self._trip[i]
            if trip is not None:
                trip["hard_brakes"] += 1
        still = driving[v["driving"][driving]]
        for i in still.tolist():
            trip = self._trip[i]
            assert trip is not None
            trip["start_ms"] = now if trip["start_ms"] is None else trip["start_ms"]
            trip["end_ms"] = now  # its latest driving frame
        for i in parked.tolist():
            self._end_trip(state, i)

    def _end_trip(self, state: FleetState, i: int) -> None:
        trip, self._trip[i] = self._trip[i], None
        if trip is None or trip["start_ms"] is None:
            return  # parked again before its first driving frame: no trip was seen
        v = state.v
        trip["odometer_end_km"] = v["odometer_km"][i].item()
        trip["end"] = [v["lat"][i].item(), v["lon"][i].item()]
        trip["distance_km"] = trip["odometer_end_km"] - trip["odometer_start_km"]
        trip["energy_wh"] = self._energy_wh[i].item()
        self.trips[self.vins[i]].append(trip)

    # -- parked --------------------------------------------------------------------------
    def parked_report(self, state: FleetState, due: Array, now: int) -> None:
        """Cars `due` just reported parked (after resting): sessions begin and end."""
        v = state.v
        for i in due.tolist():
            charging = v["charging_kw"][i].item() > 0.0
            soc = v["soc"][i].item()
            session = self._session[i]
            if charging and session is None:
                self._session[i] = {
                    "start_ms": now,
                    "end_ms": None,
                    "soc_start": soc,
                    "charger_kw": v["charging_kw"][i].item(),
                    "dc": v["charging_kw"][i].item() > 22.0,
                    "place": [v["lat"][i].item(), v["lon"][i].item()],
                    "peak_kw": v["power_w"][i].item() / 1000.0,
                    "capacity_kwh": PACK_WH / 1000.0,
                }
            elif charging and session is not None:
                session["peak_kw"] = max(session["peak_kw"], v["power_w"][i].item() / 1000.0)
            elif session is not None:
                self._end_session(i, session, now, soc)

    def _end_session(self, i: int, session: dict[str, Any], now: int, soc: float) -> None:
        session["end_ms"] = now
        session["soc_end"] = soc
        session["energy_kwh"] = (soc - session["soc_start"]) / 100.0 * PACK_WH / 1000.0
        self.sessions[self.vins[i]].append(session)
        self._session[i] = None

    def as_dict(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Per VIN: its trips and charging sessions, those still under way last."""
        out = {}
        for i, vin in enumerate(self.vins):
            trips = list(self.trips[vin])
            trip = self._trip[i]
            if trip is not None and trip["start_ms"] is not None:
                trips.append({**trip, "end_ms": None})
            sessions = list(self.sessions[vin])
            if self._session[i] is not None:
                sessions.append(dict(self._session[i] or {}))
            out[vin] = {"trips": trips, "charging_sessions": sessions}
        return out
