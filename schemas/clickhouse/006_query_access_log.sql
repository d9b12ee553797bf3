-- query_access_log: one row per request the owner query service answered or refused, so
-- "who read whose data, when" can be shown to the owner and to a regulator.
-- Plain MergeTree: an audit log must keep every row, a retried write included.
CREATE TABLE IF NOT EXISTS {database}.query_access_log
(
    at          DateTime64(3, 'UTC'),
    request_id  String,
    owner_id    String,
    endpoint    LowCardinality(String),
    vin         String DEFAULT '',
    categories  Array(LowCardinality(String)),
    time_from   Nullable(DateTime64(3, 'UTC')),
    time_to     Nullable(DateTime64(3, 'UTC')),
    rows        UInt64 DEFAULT 0,
    status      UInt16 COMMENT 'HTTP status returned',
    duration_ms UInt32 DEFAULT 0
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (owner_id, at)
TTL toDateTime(at) + toIntervalDay({retention_access_log_days});
