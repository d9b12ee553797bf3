-- samples: one row per signal value a car reported, tagged with its owner at event time.
--
-- Applied by `vdp migrate` (schemas/migrate.py). Placeholders: {database} and
-- {retention_<category>_days}, filled by the migrator; a `;` that ends a line ends a
-- statement. Never edit this file once applied anywhere: add a new numbered file.
--
-- Order key, for the owner's question ("this owner, this car, these categories, this time
-- range"): vin first, because every owner request names one car and a car is a small
-- slice of the table. owner_id is deliberately NOT in the key: the key is also the
-- ReplacingMergeTree dedup key, and a sample replayed after a crash may be tagged with a
-- different owner than the first time (an ownership event that arrived late). With
-- owner_id in the key both rows would survive and the sample would be served twice, to
-- two owners; without it the replay replaces the first row (newest ingest_time wins).
-- owner_id is then filtered inside the car's range, helped by a bloom filter index for
-- the rare "all of this owner's cars" query.
--
-- Exactly-once as seen by queries, in two layers:
--  1. insert_deduplication_token (non_replicated_deduplication_window below): the sink
--     sends each batch with a token built from its source topic-partition and offset
--     range, and async_insert=0; a retried batch with the same rows and token is
--     dropped whole at insert time, materialized views included.
--  2. ReplacingMergeTree on (vin, category, signal, event_time, seq): a sample that comes
--     back in a differently cut batch (a restart re-reads from the last committed offset)
--     is not caught by the token; it collapses at merge time, and queries that must not
--     double count read with FINAL (or GROUP BY the key). category and event_time are
--     functions of (vin, seq, signal), so the key is the sample's identity.
CREATE TABLE IF NOT EXISTS {database}.samples
(
    owner_id       String COMMENT 'owner at event_time; empty = no known owner (kept, never served)',
    vin            String COMMENT '17-character VIN; the leading key column, so it costs ~nothing stored',
    category       LowCardinality(String) COMMENT 'data category from the signal catalog',
    signal         LowCardinality(String) COMMENT 'VSS signal name, e.g. Vehicle.Speed',
    event_time     DateTime64(3, 'UTC') COMMENT 'when the car measured the value',
    seq            UInt64 COMMENT 'the car''s frame sequence number',
    value_num      Nullable(Float64) COMMENT 'numeric and boolean (0/1) signals',
    value_str      Nullable(String) COMMENT 'string signals (trouble codes, states)',
    quality        UInt8 DEFAULT 0 COMMENT 'bitmask: 1 = physically implausible jump; 0 = no flag',
    sensitivity    LowCardinality(String) COMMENT 'catalog sensitivity: personal, sensitive_personal, service, important',
    ingest_time    DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'when the sink wrote it; the replacing version',
    source_topic     LowCardinality(String) DEFAULT '',
    source_partition UInt32 DEFAULT 0,
    source_offset    UInt64 DEFAULT 0,
    INDEX idx_owner owner_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ingest_time)
-- Monthly: a fleet writes a few parts per second, so daily partitions would multiply parts
-- (TOO_MANY_PARTS) and TTL still drops whole months cheaply once all their rows expire.
PARTITION BY toYYYYMM(event_time)
ORDER BY (vin, category, signal, event_time, seq)
-- Retention per category (location and cabin are sensitive: shorter). One expression
-- rather than one TTL rule per category, so a row of a category unknown to this file still
-- gets the longest retention instead of none.
TTL toDateTime(event_time) + toIntervalDay(multiIf(
    category = 'driving', {retention_driving_days},
    category = 'location', {retention_location_days},
    category = 'battery_charging', {retention_battery_charging_days},
    category = 'diagnostics', {retention_diagnostics_days},
    category = 'adas_camera', {retention_adas_camera_days},
    category = 'cabin', {retention_cabin_days},
    category = 'vehicle_state', {retention_vehicle_state_days},
    {retention_default_days}))
-- Blocks whose hashes (or insert_deduplication_token) are remembered for retries; at about
-- one insert per second per sink partition this covers well over an hour of retries.
SETTINGS non_replicated_deduplication_window = 10000;
