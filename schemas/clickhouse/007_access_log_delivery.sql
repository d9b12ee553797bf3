-- query_access_log: what a request really delivered, not what the service meant to send.
-- `rows` already counts data rows; these say how many body bytes reached the connection
-- and whether the client left before the last one (an export cut short is then logged as
-- such, with the rows and bytes sent until then).
ALTER TABLE {database}.query_access_log
    ADD COLUMN IF NOT EXISTS bytes UInt64 DEFAULT 0 COMMENT 'response body bytes handed to the client' AFTER rows,
    ADD COLUMN IF NOT EXISTS aborted Bool DEFAULT false COMMENT 'the client went away before the response was complete' AFTER bytes;
