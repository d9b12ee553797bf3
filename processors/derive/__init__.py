"""The deriver: trips, charging sessions, idle periods and the per-minute rollup, computed
from the stored samples (README "Trips, charging and battery health").

`segments` cuts a car's frames into segments (pure), `window` decides which stretch of a
car's timeline a change makes stale (pure), `store` is the ClickHouse side (what changed,
the frames, the rows written) and `deriver` runs the rounds (`vdp derive`).
"""
