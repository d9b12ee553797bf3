-- samples.source_offset, compressed again by measurement (issue 16's ≤ 3 bytes per
-- sample): at 10 Hz it was the second largest column, 0.30 of 3.20 bytes per sample
-- (`vdp bench-storage --cars 50 --hz 10 --seconds 600`, one merged part).
--
-- A car's frames sit in one partition, so along one signal of one car the offset climbs
-- by the number of the other cars' frames written in between: steps of nearly equal
-- size, the same for each of the car's signals. Delta leaves those steps as 8-byte
-- numbers that ZSTD(3) matches poorly; DoubleDelta stores the small changes between
-- steps in a few bits. Measured on the same merged part (bytes per sample, 10 Hz / 1 Hz):
-- Delta+ZSTD(3) 0.297 / 0.128, DoubleDelta+ZSTD(3) 0.037 / 0.090, Delta+ZSTD(6) 0.025 /
-- 0.057, Delta+ZSTD(9) 0.024 / 0.048. DoubleDelta+ZSTD(3) takes nearly all of the gain
-- while ZSTD compresses a few bits per sample instead of eight bytes: the cheapest on
-- the inserts and merges. The owner queries never read this column.
--
-- Only a codec changes (metadata): parts written or merged from now on use it.
ALTER TABLE {database}.samples
    MODIFY COLUMN source_offset CODEC(DoubleDelta, ZSTD(3));
