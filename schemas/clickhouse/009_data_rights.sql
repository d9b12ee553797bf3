-- Data rights (issue 15): what owners allowed, what was not collected because they had
-- not, and what they asked to delete. See README "Data rights".

-- consent_decisions: every consent decision of every car, as carried by the compacted
-- `consent` topic (the processors write what they read, like ownership_intervals) and
-- written at once by the query service when an owner decides (so the next read shows
-- it). A decision never changes: a change or withdrawal is a new decision, so one row
-- per (vin, id), and a row written twice collapses. No TTL: the record of what an owner
-- allowed is kept as long as the car's data may be.
CREATE TABLE IF NOT EXISTS {database}.consent_decisions
(
    vin            String,
    id             String COMMENT 'the decision id; unique per car',
    owner_id       String COMMENT 'who decided; it applies only while they own the car',
    category       LowCardinality(String),
    mode           LowCardinality(String) COMMENT 'off, on, precise, coarse',
    effective_from DateTime64(3, 'UTC'),
    expires_at     Nullable(DateTime64(3, 'UTC')) COMMENT 'exclusive end of a grant; NULL for off',
    recorded_at    DateTime64(3, 'UTC'),
    ingest_time    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingest_time)
ORDER BY (vin, id);

-- not_collected: the samples the processors did not store because the owner at their
-- event time had not granted their category (never dead-lettered: they are not bad
-- data). One row per frame and category with the count of its samples left out, keyed
-- by the frame's identity, so a frame processed twice (a restart re-reads from the last
-- committed offset) replaces its row instead of counting twice; read with FINAL.
CREATE TABLE IF NOT EXISTS {database}.not_collected
(
    owner_id     String COMMENT 'owner at event_time; empty = no known owner',
    vin          String,
    category     LowCardinality(String),
    event_time   DateTime64(3, 'UTC'),
    seq          UInt64,
    samples      UInt32 COMMENT 'samples of this category in the frame that were not stored',
    ingest_time  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingest_time)
PARTITION BY toYYYYMM(event_time)
ORDER BY (vin, category, event_time, seq)
TTL toDateTime(event_time) + toIntervalDay({retention_not_collected_days})
SETTINGS non_replicated_deduplication_window = 10000;

-- deletion_requests: an owner's request to delete categories of a car over a range of
-- their own ownership, from the moment it is recorded (status pending, with its
-- deadline) to its receipt (status done: rows removed per table and category, what
-- remains, and the receipt's digest). Each state is a new row version. No TTL: the
-- receipt is the owner's proof.
CREATE TABLE IF NOT EXISTS {database}.deletion_requests
(
    request_id   String,
    owner_id     String,
    vin          String,
    categories   Array(LowCardinality(String)),
    time_from    DateTime64(3, 'UTC') COMMENT 'as requested (inclusive)',
    time_to      DateTime64(3, 'UTC') COMMENT 'as requested (exclusive)',
    scopes       Array(Tuple(DateTime64(3, 'UTC'), DateTime64(3, 'UTC')))
        COMMENT 'the requested range cut to the owner''s ownership periods: what is deleted',
    requested_at DateTime64(3, 'UTC'),
    deadline     DateTime64(3, 'UTC'),
    status       LowCardinality(String) COMMENT 'pending, done',
    done_at      Nullable(DateTime64(3, 'UTC')),
    receipt      String DEFAULT '' COMMENT 'the receipt (JSON) once done',
    digest       String DEFAULT '' COMMENT 'sha256 of the receipt, hex',
    version      UInt64 COMMENT 'milliseconds of this state; the replacing version'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (owner_id, vin, request_id);
