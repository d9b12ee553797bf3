-- incidents as episodes: a condition that holds for a while (ESC or ABS engaged, a hard
-- stop) is one row from its first to its last moment, with its peak, instead of a row per
-- sample. `event_time` stays the start (and the row's identity); rows written before this
-- migration keep end_time and peak NULL.
ALTER TABLE {database}.incidents
    ADD COLUMN IF NOT EXISTS end_time Nullable(DateTime64(3, 'UTC')) DEFAULT NULL COMMENT 'last moment of the episode (its start for a one-sample event)' AFTER event_time,
    ADD COLUMN IF NOT EXISTS peak Nullable(Float64) DEFAULT NULL COMMENT 'the extreme value during the episode (deceleration m/s², lateral acceleration m/s² …)' AFTER value;
