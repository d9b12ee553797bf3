-- daily_vehicle_stats: per car per UTC day, for analysts. An AggregatingMergeTree of
-- aggregate states, fed by two materialized views (from samples and from incidents);
-- read it through the view daily_vehicle_stats_view, which merges the states.
--
-- Why it stays right when a sample or incident is inserted twice: a materialized view
-- sees every inserted block, duplicates included (only a block dropped by
-- insert_deduplication_token never reaches it). So every state here is one a duplicate
-- row cannot change: min/max, the value at the first/last event time (argMin/argMax over
-- identical rows), and counts of DISTINCT things (uniqExact of event times, minutes).
-- Never a sum or a plain count.
CREATE TABLE IF NOT EXISTS {database}.daily_vehicle_stats
(
    vin          String,
    day          Date COMMENT 'UTC day of event_time',
    odometer_min AggregateFunction(minOrNullIf, Float64, UInt8) COMMENT 'Vehicle.TraveledDistance, km',
    odometer_max AggregateFunction(maxOrNullIf, Float64, UInt8),
    speed_max    AggregateFunction(maxOrNullIf, Float64, UInt8) COMMENT 'Vehicle.Speed, km/h',
    soc_first    AggregateFunction(argMinOrNullIf, Float64, DateTime64(3, 'UTC'), UInt8)
        COMMENT 'state of charge (%) at the first reading of the day',
    soc_last     AggregateFunction(argMaxOrNullIf, Float64, DateTime64(3, 'UTC'), UInt8),
    soc_min      AggregateFunction(minOrNullIf, Float64, UInt8),
    charging_minutes AggregateFunction(uniqExactIf, DateTime('UTC'), UInt8)
        COMMENT 'distinct minutes with a Charging.IsCharging = 1 reading',
    hard_brakes  AggregateFunction(uniqExactIf, DateTime64(3, 'UTC'), UInt8)
        COMMENT 'distinct hard_braking incidents (by event time)',
    incidents    AggregateFunction(uniqExact, LowCardinality(String), DateTime64(3, 'UTC'))
        COMMENT 'distinct incidents of any kind'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (vin, day)
-- Derived from driving, battery_charging and vehicle_state samples: kept as long as the
-- longest of those, no longer.
TTL day + toIntervalDay(greatest({retention_driving_days}, {retention_battery_charging_days},
    {retention_vehicle_state_days}))
-- Needed here too: on ClickHouse 26.x a block dropped by its dedup token in `samples` still
-- runs through the views (measured on the embedded engine: a retried batch whose rows had
-- changed showed up in these stats). With a window on this table, the view's block gets a
-- token derived from the source's (deduplicate_blocks_in_dependent_materialized_views=1,
-- the default) and is dropped as well. Without a token an identical state block may be
-- dropped too, which loses nothing: every state here is idempotent.
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.daily_vehicle_stats_samples_mv
TO {database}.daily_vehicle_stats
AS SELECT
    vin,
    toDate(event_time) AS day,
    minOrNullIfState(assumeNotNull(value_num), signal = 'Vehicle.TraveledDistance') AS odometer_min,
    maxOrNullIfState(assumeNotNull(value_num), signal = 'Vehicle.TraveledDistance') AS odometer_max,
    maxOrNullIfState(assumeNotNull(value_num), signal = 'Vehicle.Speed') AS speed_max,
    argMinOrNullIfState(assumeNotNull(value_num), event_time,
        signal = 'Vehicle.Powertrain.TractionBattery.StateOfCharge.Current') AS soc_first,
    argMaxOrNullIfState(assumeNotNull(value_num), event_time,
        signal = 'Vehicle.Powertrain.TractionBattery.StateOfCharge.Current') AS soc_last,
    minOrNullIfState(assumeNotNull(value_num),
        signal = 'Vehicle.Powertrain.TractionBattery.StateOfCharge.Current') AS soc_min,
    uniqExactIfState(toStartOfMinute(event_time),
        signal = 'Vehicle.Powertrain.TractionBattery.Charging.IsCharging'
            AND assumeNotNull(value_num) = 1)
        AS charging_minutes
FROM {database}.samples
-- value_num IS NOT NULL makes assumeNotNull safe; the signal list keeps the view from
-- aggregating the many signals it does not use.
WHERE value_num IS NOT NULL AND signal IN (
    'Vehicle.TraveledDistance', 'Vehicle.Speed',
    'Vehicle.Powertrain.TractionBattery.StateOfCharge.Current',
    'Vehicle.Powertrain.TractionBattery.Charging.IsCharging')
GROUP BY vin, day;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.daily_vehicle_stats_incidents_mv
TO {database}.daily_vehicle_stats
AS SELECT
    vin,
    toDate(event_time) AS day,
    uniqExactIfState(event_time, kind = 'hard_braking') AS hard_brakes,
    uniqExactState(kind, event_time) AS incidents
FROM {database}.incidents
GROUP BY vin, day;

-- Finished numbers. energy: the drop in state of charge over the day (first − last
-- reading, in % of the pack), net of any charging that day; kept that simple on purpose,
-- integrating pack power would count a re-inserted sample twice.
CREATE VIEW IF NOT EXISTS {database}.daily_vehicle_stats_view
AS SELECT
    vin,
    day,
    maxOrNullIfMerge(odometer_max) - minOrNullIfMerge(odometer_min) AS distance_km,
    maxOrNullIfMerge(speed_max) AS max_speed_kmh,
    argMinOrNullIfMerge(soc_first) AS soc_first_pct,
    argMaxOrNullIfMerge(soc_last) AS soc_last_pct,
    minOrNullIfMerge(soc_min) AS soc_min_pct,
    argMinOrNullIfMerge(soc_first) - argMaxOrNullIfMerge(soc_last) AS soc_used_pct,
    uniqExactIfMerge(charging_minutes) AS charging_minutes,
    uniqExactIfMerge(hard_brakes) AS hard_brakes,
    uniqExactMerge(incidents) AS incidents
FROM {database}.daily_vehicle_stats
GROUP BY vin, day;
