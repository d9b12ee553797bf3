"""A car's timeline cut into trips, charging sessions and idle periods.

Pure: the car's frames in time order (one `Frame` per stored frame, with the few signals
the cut reads) in, `Segment`s out. Each frame is classified on its own:

- charging: `Charging.IsCharging` is 1;
- driving: speed above 0, or a gear engaged (drive, reverse or a forward gear);
- parked: the low-voltage system locked or off, gear P, or a battery reading that says
  "not charging" with no driving signal beside it;
- anything else (a frame of diagnostics only, say) cuts nothing and only adds readings.

A segment is a run of one class and one owner. Driving frames further apart than the trip
gap are two trips; a pause in charging shorter than the merge gap (parked frames between
charging ones) is part of one session; an idle period ends at each UTC midnight, so a car
parked for weeks is never recomputed from weeks back. A frame of no known owner ends
whatever runs. Every decision reads only the frames within `Rules.context_ms` of it,
which is what lets the deriver recompute a stretch of the timeline alone (see `window`).

Readings come from the categories that were stored: without `location` there are no
places, without `battery_charging` no energy and no sessions, without `driving` no trips.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processors.batch.incidents import EPISODE_GAP_MS, HARD_BRAKING_MS2

TRIP, CHARGING, IDLE = "trip", "charging", "idle"
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_PARK_GEAR = 126  # VSS SelectedGear: 126 = P, 127 = D, 0 = N, below 0 = reverse
_NEUTRAL = 0
_LOCKED = frozenset({"LOCK", "OFF"})


@dataclass(frozen=True, slots=True)
class Frame:
    """One stored frame of a car: the signals the cut reads (None: not in the frame)."""

    t: int  # event time, ms
    owner: str
    speed: float | None = None  # km/h
    gear: float | None = None
    accel: float | None = None  # longitudinal, m/s²
    abs_on: float | None = None
    esc_on: float | None = None
    power_state: str | None = None  # Vehicle.LowVoltageSystemState
    odometer: float | None = None  # km
    soc: float | None = None  # %
    power: float | None = None  # W at the pack, positive while charging
    charging: float | None = None  # 1 while charging
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class Rules:
    trip_gap_ms: int
    merge_gap_ms: int
    min_capacity_soc: float = 10.0

    @property
    def context_ms(self) -> int:
        """How far (in time) any decision of the cut looks around a frame."""
        return max(self.trip_gap_ms, self.merge_gap_ms)


def classify(f: Frame) -> str | None:
    if f.charging == 1:
        return CHARGING
    if (f.speed is not None and f.speed > 0) or (
        f.gear is not None and f.gear not in (_NEUTRAL, _PARK_GEAR)
    ):
        return TRIP
    driving_seen = f.speed is not None or f.gear is not None
    if f.power_state in _LOCKED or f.gear == _PARK_GEAR or (f.charging == 0 and not driving_seen):
        return IDLE
    return None


@dataclass
class Segment:
    """A trip, a charging session or an idle period, with what was measured in it."""

    kind: str
    owner: str
    start: int
    end: int
    complete: bool = False
    frames: int = 0
    start_place: tuple[float, float] | None = None
    end_place: tuple[float, float] | None = None
    odometer_start: float | None = None
    odometer_end: float | None = None
    energy_wh: float | None = None  # trip: used; session: added
    energy_hours: dict[int, float] = field(default_factory=dict)  # session: Wh per UTC hour
    peak_w: float | None = None
    soc_start: float | None = None
    soc_end: float | None = None
    capacity_kwh: float | None = None
    max_speed: float | None = None
    hard_brakes: int = 0
    abs_events: int = 0
    esc_events: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.kind, self.start)


@dataclass
class _Episodes:
    """Debounced episodes of one condition, as processors/batch/incidents.py counts them."""

    count: int = 0
    last: int | None = None

    def hit(self, t: int) -> None:
        if self.last is None or t - self.last > EPISODE_GAP_MS:
            self.count += 1
        self.last = t


@dataclass
class _Open:
    seg: Segment
    last: int  # last frame of the segment's class (a session: last charging frame)
    soc_at_last: float | None = None
    energy_at_last: float = 0.0
    brakes: _Episodes = field(default_factory=_Episodes)
    abs: _Episodes = field(default_factory=_Episodes)
    esc: _Episodes = field(default_factory=_Episodes)
    pending: list[Frame] = field(default_factory=list)  # parked frames in a charging pause
    place_t: int | None = None  # when `seg.end_place` was read


class Cutter:
    """Feed a car's frames in (event time, seq) order, then `finish`."""

    def __init__(self, rules: Rules, now_ms: int) -> None:
        self.rules = rules
        self.now = now_ms
        self.done: list[Segment] = []
        self._cur: _Open | None = None
        # The latest readings before the current frame, for a segment's first interval and
        # its starting odometer and place: (time, value).
        self._odometer: tuple[int, float] | None = None
        self._place: tuple[int, tuple[float, float]] | None = None
        self._power_t: int | None = None
        self._power_in: _Open | None = None  # the segment the last power reading fell in
        self._previous: int | None = None  # the time of the frame before the current one

    # -- feeding -----------------------------------------------------------------------
    def feed(self, f: Frame) -> None:
        kind = classify(f) if f.owner else None
        cur = self._cur
        charging = cur is not None and cur.seg.kind == CHARGING and f.owner == cur.seg.owner
        if cur is not None and charging and (kind is not None or cur.pending):
            if self._pause(cur, kind, f):
                self._remember(f, self._cur)
                return
            self._end_charging(cur, f)
        self._plain(kind, f)
        self._remember(f, self._cur)

    def _plain(self, kind: str | None, f: Frame) -> None:
        cur = self._cur
        if not f.owner:
            self._close(None)  # nobody known owns the car now: whatever ran has ended
        elif kind is None:
            if cur is not None and cur.seg.owner == f.owner:
                self._readings(cur, f)
        else:
            self._step(kind, f)

    def _step(self, kind: str, f: Frame) -> None:
        cur = self._cur
        if cur is None:
            self._open(kind, f)
        elif cur.seg.owner != f.owner or kind != cur.seg.kind or self._breaks(cur, f):
            self._close(f)
            self._open(kind, f)
        else:
            self._add(cur, f)

    def _breaks(self, cur: _Open, f: Frame) -> bool:
        if cur.seg.kind == TRIP:
            return f.t - cur.last > self.rules.trip_gap_ms
        if cur.seg.kind == IDLE:
            return f.t // DAY_MS != cur.last // DAY_MS
        return f.t - cur.last > self.rules.merge_gap_ms

    def _pause(self, cur: _Open, kind: str | None, f: Frame) -> bool:
        """A charging session meets `f`: True when `f` continues it (charging again within
        the merge gap, or parked within it: a pause, held with the readings that come
        meanwhile until it is known whether the session goes on or has ended)."""
        if f.t - cur.last > self.rules.merge_gap_ms or kind == TRIP:
            return False
        if kind != CHARGING:
            cur.pending.append(f)
            return True
        for p in cur.pending:  # charging again: the pause's frames belong to the session
            self._readings(cur, p)
            cur.seg.frames += 1 if classify(p) == IDLE else 0
        cur.pending.clear()
        self._add(cur, f)
        return True

    def _end_charging(self, cur: _Open, closer: Frame) -> None:
        """The session is over: it ends at the pause's first frame (or `closer`), and the
        pause's parked frames are an idle period."""
        pending, cur.pending = cur.pending, []
        self._close(pending[0] if pending else closer)
        for p in pending:
            self._plain(classify(p), p)

    # -- a segment's life --------------------------------------------------------------
    def _open(self, kind: str, f: Frame) -> None:
        seg = Segment(kind, f.owner, f.t, f.t)
        cur = _Open(seg, f.t)
        # Where and at what mileage it began: the frame just before, if it says (a reading
        # from further back may be from before a consent was withdrawn, or elsewhere).
        previous = self._previous
        if previous is not None and f.t - previous <= self.rules.context_ms:
            if kind == TRIP and self._odometer is not None and self._odometer[0] == previous:
                seg.odometer_start = self._odometer[1]
            if self._place is not None and self._place[0] == previous:
                seg.start_place = self._place[1]
        self._cur = cur
        self._add(cur, f)

    def _add(self, cur: _Open, f: Frame) -> None:
        seg = cur.seg
        seg.frames += 1
        seg.end = cur.last = f.t
        self._readings(cur, f)
        if seg.kind == TRIP:
            if f.speed is not None and (seg.max_speed is None or f.speed > seg.max_speed):
                seg.max_speed = f.speed
            if f.accel is not None and f.accel <= HARD_BRAKING_MS2:
                cur.brakes.hit(f.t)
            if f.abs_on == 1:
                cur.abs.hit(f.t)
            if f.esc_on == 1:
                cur.esc.hit(f.t)
        elif seg.kind == CHARGING:
            if f.power is not None and (seg.peak_w is None or f.power > seg.peak_w):
                seg.peak_w = f.power
            if f.soc is not None:
                cur.soc_at_last = f.soc
            cur.energy_at_last = seg.energy_wh or 0.0

    def _readings(self, cur: _Open, f: Frame) -> None:
        """Readings any frame of the segment adds: place, odometer, charge, energy."""
        seg = cur.seg
        if f.lat is not None and f.lon is not None:
            # A place is where the segment began or ended, or it is not known: a reading
            # from its middle (consent withdrawn on the way) is not its end.
            if seg.start_place is None and f.t == seg.start:
                seg.start_place = (f.lat, f.lon)
            seg.end_place, cur.place_t = (f.lat, f.lon), f.t
        if f.odometer is not None:
            seg.odometer_start = f.odometer if seg.odometer_start is None else seg.odometer_start
            seg.odometer_end = f.odometer
        if f.soc is not None:
            seg.soc_start = f.soc if seg.soc_start is None else seg.soc_start
            seg.soc_end = f.soc
        if f.power is not None:
            self._energy(cur, f, f.power)

    def _energy(self, cur: _Open, f: Frame, power: float) -> None:
        """The pack energy of the interval since the previous power reading: a reading
        stands for the interval that ends at it (the car reports what it just did)."""
        seg, previous, kind = cur.seg, self._power_t, classify(f)
        if previous is None or not 0 < f.t - previous <= self.rules.context_ms:
            return
        if seg.kind == TRIP and kind == TRIP:
            seg.energy_wh = (seg.energy_wh or 0.0) - power * (f.t - previous) / HOUR_MS
        elif seg.kind == CHARGING and kind == CHARGING and self._power_in is cur:
            # Only intervals that began in the session: the first charging reading adds none.
            wh = max(power, 0.0) * (f.t - previous) / HOUR_MS
            seg.energy_wh = (seg.energy_wh or 0.0) + wh
            _by_hour(seg.energy_hours, previous, f.t, wh)

    def _remember(self, f: Frame, cur: _Open | None) -> None:
        self._previous = f.t
        if f.odometer is not None:
            self._odometer = (f.t, f.odometer)
        if f.lat is not None and f.lon is not None:
            self._place = (f.t, (f.lat, f.lon))
        if f.power is not None:
            self._power_t, self._power_in = f.t, cur

    def _close(self, closer: Frame | None, complete: bool = True) -> None:
        """End the segment under way; `closer` is the frame that ended it, if one did."""
        cur = self._cur
        if cur is None:
            return
        self._cur = None
        seg = cur.seg
        seg.complete = complete
        if seg.kind == TRIP:
            near = self._near(cur, closer, self.rules.trip_gap_ms)
            if cur.place_t != cur.last:
                seg.end_place = None
            if near and closer is not None and classify(closer) != TRIP:
                # Where and at what mileage the car stopped: the frame that says it parked.
                if closer.odometer is not None:
                    seg.odometer_end = closer.odometer
                if closer.lat is not None and closer.lon is not None:
                    seg.end_place = (closer.lat, closer.lon)
            seg.hard_brakes, seg.abs_events = cur.brakes.count, cur.abs.count
            seg.esc_events = cur.esc.count
        elif seg.kind == CHARGING:
            near = self._near(cur, closer, self.rules.merge_gap_ms)
            self._end_session(cur, closer if near else None)
        self.done.append(seg)

    @staticmethod
    def _near(cur: _Open, closer: Frame | None, gap: int) -> bool:
        """Whether `closer` says how the segment ended: the same owner's, soon after."""
        return closer is not None and closer.owner == cur.seg.owner and closer.t - cur.last <= gap

    def _end_session(self, cur: _Open, closer: Frame | None) -> None:
        seg = cur.seg
        seg.energy_wh = seg.energy_wh or 0.0
        # Charging was seen to have stopped at the frame after the last charging one.
        if closer is not None:
            seg.end = closer.t
            seg.soc_end = closer.soc if closer.soc is not None else cur.soc_at_last
        else:
            seg.end, seg.soc_end = cur.last, cur.soc_at_last
        if seg.soc_start is not None and cur.soc_at_last is not None:
            added = cur.soc_at_last - seg.soc_start
            if added >= self.rules.min_capacity_soc:
                seg.capacity_kwh = cur.energy_at_last / added * 100.0 / 1000.0

    def finish(self) -> list[Segment]:
        """Every segment cut. The last one is open (not complete) unless the car has been
        quiet for longer than any gap (an idle period stays open: the car is parked)."""
        cur = self._cur
        if cur is not None and cur.seg.kind == CHARGING and cur.pending:
            if self.now - cur.last > self.rules.merge_gap_ms:
                self._end_charging(cur, cur.pending[0])  # the pause outlasted the gap
            else:
                cur.pending.clear()  # may still resume: the session stays open
        cur = self._cur
        if cur is not None:
            quiet = self.now - cur.last > self.rules.context_ms
            self._close(None, complete=quiet and cur.seg.kind != IDLE)
        return self.done


def cut(frames: list[Frame], rules: Rules, now_ms: int) -> list[Segment]:
    cutter = Cutter(rules, now_ms)
    for f in frames:
        cutter.feed(f)
    return cutter.finish()


def _by_hour(hours: dict[int, float], start: int, end: int, wh: float) -> None:
    """Spread `wh`, added evenly over [start, end), over the UTC hours it covers."""
    span = end - start
    t = start
    while t < end:
        nxt = min((t // HOUR_MS + 1) * HOUR_MS, end)
        hour = t // HOUR_MS * HOUR_MS
        hours[hour] = hours.get(hour, 0.0) + wh * (nxt - t) / span
        t = nxt
