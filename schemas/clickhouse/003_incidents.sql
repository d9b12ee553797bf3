-- incidents: notable events the processors detect (hard braking, ABS/ESC interventions,
-- emergency braking, trouble codes, low tyre pressure …), for the owner ("what happened
-- before the crash") and for analysts. Same owner-first access and same two-layer
-- exactly-once as `samples` (see 001_samples.sql): the key (vin, category, kind,
-- event_time) is the incident's identity, owner_id stays out of it.
CREATE TABLE IF NOT EXISTS {database}.incidents
(
    owner_id     String COMMENT 'owner at event_time; empty = no known owner',
    vin          String,
    category     LowCardinality(String) COMMENT 'category of the signal that raised it (driving, diagnostics …)',
    kind         LowCardinality(String) COMMENT 'hard_braking, abs, esc, emergency_brake, trouble_code, tyre_pressure_low …',
    event_time   DateTime64(3, 'UTC'),
    seq          UInt64 DEFAULT 0 COMMENT 'frame that raised it',
    value        Nullable(Float64) COMMENT 'the triggering value (deceleration m/s², pressure kPa …)',
    detail       String DEFAULT '' COMMENT 'human-readable detail, e.g. the trouble codes',
    ingest_time  DateTime64(3, 'UTC') DEFAULT now64(3),
    source_topic     LowCardinality(String) DEFAULT '',
    source_partition UInt32 DEFAULT 0,
    source_offset    UInt64 DEFAULT 0
)
ENGINE = ReplacingMergeTree(ingest_time)
PARTITION BY toYYYYMM(event_time)
ORDER BY (vin, category, kind, event_time)
TTL toDateTime(event_time) + toIntervalDay(multiIf(
    category = 'driving', {retention_driving_days},
    category = 'location', {retention_location_days},
    category = 'battery_charging', {retention_battery_charging_days},
    category = 'diagnostics', {retention_diagnostics_days},
    category = 'adas_camera', {retention_adas_camera_days},
    category = 'cabin', {retention_cabin_days},
    category = 'vehicle_state', {retention_vehicle_state_days},
    {retention_default_days}))
SETTINGS non_replicated_deduplication_window = 10000;
