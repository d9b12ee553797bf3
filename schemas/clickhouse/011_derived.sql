-- Derived data (issue 16): what owners use most, computed from the stored samples by the
-- deriver (`vdp derive`, processors/derive/; README "Trips, charging and battery health").
-- Every table here is a function of what `samples` holds (read with FINAL), so a sample
-- re-delivered or replayed changes nothing, and a deletion reaches them by recomputation.

-- derive_hours: the change feed. A materialized view marks each hour of each car that a
-- sample was inserted into (marked_at: when); the deriver records up to when it has
-- rolled the hour up into samples_1m (rolled_at) and cut it into trips, sessions and idle
-- periods (segmented_at). An hour whose last mark is newer than its rolled_at is stale:
-- the query service reads it raw instead of from samples_1m, so the rollup never serves
-- a number the raw query would not. SimpleAggregateFunction(max): marks and coverage are
-- separate rows of one key, merged by taking each column's largest value. The `day`
-- column lets the deletion executor rebuild the view's rows per (vin, day) like every
-- other rollup of samples: the rebuilt marks are new, so the deriver recomputes the days.
CREATE TABLE IF NOT EXISTS {database}.derive_hours
(
    vin          String CODEC(ZSTD(3)),
    day          Date COMMENT 'UTC day of the hour',
    hour         DateTime('UTC'),
    marked_at    SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
        COMMENT 'when a sample of this hour was last inserted',
    rolled_at    SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
        COMMENT 'samples_1m holds every sample of this hour inserted by then',
    segmented_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
        COMMENT 'trips, charging_sessions and idle_periods hold this hour as inserted by then',
    -- The deriver looks for marks newer than its last round: granules of merged old parts
    -- have no such mark and are skipped.
    INDEX idx_marked marked_at TYPE minmax GRANULARITY 1
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (vin, day, hour)
TTL day + toIntervalDay({retention_default_days});

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.derive_hours_mv
TO {database}.derive_hours
AS SELECT
    vin,
    toDate(event_time) AS day,
    toDateTime(toStartOfHour(event_time), 'UTC') AS hour,
    max(now64(3, 'UTC')) AS marked_at,
    toDateTime64(0, 3, 'UTC') AS rolled_at,
    toDateTime64(0, 3, 'UTC') AS segmented_at
FROM {database}.samples
GROUP BY vin, day, hour;

-- samples_1m: min, max, sum and count of every numeric signal per car, owner and minute,
-- for the month views (`/series?resolution=` a multiple of 60). Recomputed whole for an
-- hour once its marks settle, from samples FINAL: a key that disappears (a sample
-- re-tagged with another owner by a replay) gets a tombstone (is_deleted = 1), which FINAL
-- hides. `event_time` is the minute's start, named as in `samples` so the per-category
-- retention (the same TTL, generated from the catalog) applies to it unchanged.
CREATE TABLE IF NOT EXISTS {database}.samples_1m
(
    vin        String CODEC(ZSTD(3)),
    category   LowCardinality(String) CODEC(ZSTD(3)),
    signal     LowCardinality(String) CODEC(ZSTD(3)),
    event_time DateTime('UTC') CODEC(Delta, ZSTD(3)) COMMENT 'start of the minute',
    owner_id   String CODEC(ZSTD(3)) COMMENT 'owner the samples were tagged with (never empty)',
    lo         Float64 CODEC(FPC, ZSTD(3)) COMMENT 'min(value_num)',
    hi         Float64 CODEC(FPC, ZSTD(3)) COMMENT 'max(value_num)',
    total      Float64 CODEC(FPC, ZSTD(3)) COMMENT 'sum(value_num)',
    n          UInt32 CODEC(ZSTD(3)) COMMENT 'count of samples',
    version    DateTime64(3, 'UTC') CODEC(Delta, ZSTD(3)) COMMENT 'when derived; the replacing version',
    is_deleted UInt8 DEFAULT 0 COMMENT '1: this key is gone (hidden by FINAL)'
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(event_time)
ORDER BY (vin, category, signal, event_time, owner_id)
TTL toDateTime(event_time) + toIntervalDay(multiIf(
    category = 'driving', {retention_driving_days},
    category = 'location', {retention_location_days},
    category = 'battery_charging', {retention_battery_charging_days},
    category = 'diagnostics', {retention_diagnostics_days},
    category = 'adas_camera', {retention_adas_camera_days},
    category = 'cabin', {retention_cabin_days},
    category = 'vehicle_state', {retention_vehicle_state_days},
    {retention_default_days}));

-- The segment tables (trips, charging_sessions, idle_periods) are partitioned by year: a car
-- has a few thousand rows a year, and a year of them read with FINAL from 12 monthly
-- partitions cost a merge per partition (measured: the year's trips of one car 13-15 ms
-- against 8-9 ms from one yearly partition, through the embedded server).

-- trips: one row per trip, keyed (vin, start_time) like a sample by its identity; owner_id
-- stays out of the key for the reason 001_samples.sql gives. A trip is cut from the
-- driving samples; each other figure comes from its own category and is kept only as long
-- as that category (column TTLs: places are location data, distance is the odometer's,
-- energy the battery's), so no derived value outlives the data it was derived from.
CREATE TABLE IF NOT EXISTS {database}.trips
(
    vin            String CODEC(ZSTD(3)),
    owner_id       String CODEC(ZSTD(3)) COMMENT 'owner during the trip (a change of owner ends a trip)',
    start_time     DateTime64(3, 'UTC') COMMENT 'first driving sample',
    end_time       DateTime64(3, 'UTC') COMMENT 'last driving sample',
    complete       Bool COMMENT 'false while the car may still be on this trip',
    start_lat      Nullable(Float64) TTL toDateTime(start_time) + toIntervalDay({retention_location_days}),
    start_lon      Nullable(Float64) TTL toDateTime(start_time) + toIntervalDay({retention_location_days}),
    end_lat        Nullable(Float64) TTL toDateTime(start_time) + toIntervalDay({retention_location_days}),
    end_lon        Nullable(Float64) TTL toDateTime(start_time) + toIntervalDay({retention_location_days}),
    odometer_start_km Nullable(Float64) TTL toDateTime(start_time) + toIntervalDay({retention_vehicle_state_days}),
    odometer_end_km   Nullable(Float64) TTL toDateTime(start_time) + toIntervalDay({retention_vehicle_state_days}),
    energy_wh      Nullable(Float64) TTL toDateTime(start_time) + toIntervalDay({retention_battery_charging_days})
        COMMENT 'battery energy used: the integral of the pack power over the trip',
    max_speed_kmh  Nullable(Float64),
    hard_brakes    UInt16 COMMENT 'episodes beyond 6 m/s² of deceleration',
    abs_events     UInt16 COMMENT 'ABS episodes',
    esc_events     UInt16 COMMENT 'ESC episodes',
    frames         UInt32 COMMENT 'driving frames in the trip',
    version        DateTime64(3, 'UTC') COMMENT 'when derived; the replacing version',
    is_deleted     UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYear(start_time)
ORDER BY (vin, start_time)
TTL toDateTime(start_time) + toIntervalDay({retention_driving_days});

-- charging_sessions: one row per session (short interruptions merged), from the
-- battery_charging samples. energy_hours is the energy added per UTC hour, so a
-- time-of-use tariff prices it at query time in its own time zone (the tariff is a
-- setting, not stored data: a price change needs no recomputation).
CREATE TABLE IF NOT EXISTS {database}.charging_sessions
(
    vin          String CODEC(ZSTD(3)),
    owner_id     String CODEC(ZSTD(3)),
    start_time   DateTime64(3, 'UTC') COMMENT 'first charging sample',
    end_time     DateTime64(3, 'UTC') COMMENT 'when charging was seen to have stopped',
    complete     Bool COMMENT 'false while the car may still be charging',
    soc_start    Nullable(Float64) COMMENT 'state of charge (%) at the start',
    soc_end      Nullable(Float64),
    energy_kwh   Float64 COMMENT 'energy into the pack: the integral of the charging power',
    energy_hours Array(Tuple(DateTime('UTC'), Float64)) COMMENT 'energy_kwh per UTC hour',
    peak_kw      Float64,
    current_type LowCardinality(String) COMMENT 'AC or DC (DC above 22 kW, the most AC gives)',
    capacity_kwh Nullable(Float64)
        COMMENT 'usable capacity: energy per 100 % of charge, when the session added enough',
    lat          Nullable(Float64) TTL toDateTime(start_time) + toIntervalDay({retention_location_days}),
    lon          Nullable(Float64) TTL toDateTime(start_time) + toIntervalDay({retention_location_days}),
    frames       UInt32,
    version      DateTime64(3, 'UTC'),
    is_deleted   UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYear(start_time)
ORDER BY (vin, start_time)
TTL toDateTime(start_time) + toIntervalDay({retention_battery_charging_days});

-- idle_periods: parked and not charging, for the idle drain (state of charge lost while
-- parked, per day).
CREATE TABLE IF NOT EXISTS {database}.idle_periods
(
    vin          String CODEC(ZSTD(3)),
    owner_id     String CODEC(ZSTD(3)),
    start_time   DateTime64(3, 'UTC'),
    end_time     DateTime64(3, 'UTC'),
    complete     Bool,
    soc_start    Nullable(Float64),
    soc_end      Nullable(Float64),
    frames       UInt32,
    version      DateTime64(3, 'UTC'),
    is_deleted   UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYear(start_time)
ORDER BY (vin, start_time)
TTL toDateTime(start_time) + toIntervalDay({retention_battery_charging_days});
