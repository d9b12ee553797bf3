-- samples, compressed by measurement (issue 16): 7.0 bytes per sample with the default
-- LZ4 on a simulated fleet (200 cars, 30 min at 1 Hz, every category, 15.0M samples,
-- one merged part), 2.43 with these codecs. `vdp bench-query --storage` reproduces it.
--
-- What each column is in the table's order (vin, category, signal, event_time, seq), and
-- so what compresses it:
--  - event_time, seq, ingest_time, source_offset climb by nearly equal steps along one
--    signal of one car: Delta then ZSTD (0.01-0.12 bytes each; DoubleDelta measured a
--    little larger once ZSTD follows, and T64 30x larger).
--  - value_num is the sample itself, 2.2 of the 2.43 bytes: full-precision doubles of
--    slowly moving quantities (speed, position, pack voltage …) next to 0/1 flags and
--    small integers. FPC (predicts each double from the previous ones and stores the
--    XOR's significant bytes) then ZSTD: 2.22 bytes; Delta+ZSTD 2.29, Gorilla+ZSTD 2.51,
--    ZSTD alone 2.53, LZ4 2.97. Higher ZSTD levels gained under 1 %.
--  - owner_id and vin repeat for long runs (vin leads the key): ZSTD takes them to
--    0.02 bytes. LowCardinality would shave another 0.015 but changes their type, which
--    rewrites every part of an existing store; a codec change does not.
--  - the LowCardinality columns and the rarely set value_str and quality: ZSTD.
--
-- Only codecs change (metadata), so existing stores run this at once: parts written
-- from now on, and every part a merge rewrites, use the new codecs; old parts keep theirs
-- until merged (`OPTIMIZE TABLE samples FINAL` rewrites them now, at the cost of reading
-- and writing the whole table). Reads decompress ZSTD instead of LZ4: the owner
-- queries read a few granules and did not slow (docs/benchmarks.md).
ALTER TABLE {database}.samples
    MODIFY COLUMN owner_id CODEC(ZSTD(3)),
    MODIFY COLUMN vin CODEC(ZSTD(3)),
    MODIFY COLUMN category CODEC(ZSTD(3)),
    MODIFY COLUMN signal CODEC(ZSTD(3)),
    MODIFY COLUMN event_time CODEC(Delta, ZSTD(3)),
    MODIFY COLUMN seq CODEC(Delta, ZSTD(3)),
    MODIFY COLUMN value_num CODEC(FPC, ZSTD(3)),
    MODIFY COLUMN value_str CODEC(ZSTD(3)),
    MODIFY COLUMN quality CODEC(ZSTD(1)),
    MODIFY COLUMN sensitivity CODEC(ZSTD(3)),
    MODIFY COLUMN ingest_time CODEC(Delta, ZSTD(3)),
    MODIFY COLUMN source_topic CODEC(ZSTD(3)),
    MODIFY COLUMN source_partition CODEC(ZSTD(3)),
    MODIFY COLUMN source_offset CODEC(Delta, ZSTD(3));
