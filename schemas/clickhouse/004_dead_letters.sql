-- dead_letters: every record the processors rejected, with its original bytes, so a
-- platform engineer can see why (by reason), fix the cause and replay it. The Kafka
-- dead-letter topic is the source of truth; this table makes it queryable.
--
-- received_time is the source message's Kafka timestamp, not the sink's clock, so a
-- replayed dead letter has the same key and collapses (ReplacingMergeTree) like samples.
CREATE TABLE IF NOT EXISTS {database}.dead_letters
(
    received_time    DateTime64(3, 'UTC') COMMENT 'Kafka timestamp of the rejected message',
    reason           LowCardinality(String) COMMENT 'reason code, e.g. bad_magic, unknown_schema, out_of_range',
    detail           String COMMENT 'human-readable explanation',
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    vin              String DEFAULT '' COMMENT 'the message key when it is a VIN; empty if unknown',
    signal           String DEFAULT '' COMMENT 'the rejected sample''s signal; empty for a whole record',
    original         String COMMENT 'the original message value, byte for byte',
    ingest_time      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingest_time)
PARTITION BY toYYYYMM(received_time)
-- signal is in the key: one frame can lose several samples for the same reason, each its
-- own dead letter (the whole-record rejections have signal '').
ORDER BY (reason, received_time, source_topic, source_partition, source_offset, signal)
-- Original bytes hold personal data of every category: keep them only as long as it takes
-- to inspect and replay.
TTL toDateTime(received_time) + toIntervalDay({retention_dead_letters_days})
SETTINGS non_replicated_deduplication_window = 1000;
