-- The webhook's claim (PostgresMetadataStore.PendingAsync) takes the oldest unclaimed events, a batch at a time, on every
-- poll of every node (each second). Without an index on completed_at that is a scan and a full sort of the whole outbox
-- (LockRows sits between the sort and the LIMIT, so PostgreSQL cannot keep only the top rows): with a backlog of 200,000
-- events, about 250 ms and 6 MB of temporary files per poll. With it, an index scan stops after a batch's worth of rows.
-- A delivered event is deleted, so every row is pending: a partial index would cover the same rows.
CREATE INDEX IF NOT EXISTS outbox_completed_at ON outbox (completed_at);
