-- ownership_intervals: who owned which car when, derived from the compacted `ownership`
-- topic (delivery, transfer, return events keyed by VIN). The query service checks a
-- request's time range against these intervals; the tagger keeps its own copy in memory.
--
-- One row per (vin, valid_from). The open interval of the current owner has valid_to at
-- the far future; when the next event for the car arrives, the sink re-inserts the row
-- with valid_to closed and a higher event_offset, and ReplacingMergeTree keeps that
-- version (read with FINAL). Offsets are comparable because the topic is keyed by VIN, so
-- all of one car's events share one partition.
CREATE TABLE IF NOT EXISTS {database}.ownership_intervals
(
    vin          String,
    owner_id     String COMMENT 'empty for a return (the car has no owner in this interval)',
    kind         LowCardinality(String) COMMENT 'event that opened the interval: delivery, transfer, return',
    valid_from   DateTime64(3, 'UTC'),
    valid_to     DateTime64(3, 'UTC') DEFAULT toDateTime64('2299-12-31 23:59:59.999', 3, 'UTC')
        COMMENT 'exclusive; far future while the interval is open',
    event_partition UInt32 DEFAULT 0,
    event_offset UInt64 COMMENT 'offset of the last event that shaped this row; the replacing version',
    ingest_time  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(event_offset)
ORDER BY (vin, valid_from)
SETTINGS non_replicated_deduplication_window = 1000;
