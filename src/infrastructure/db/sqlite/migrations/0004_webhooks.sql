-- Webhooks: a run's own URL, and the outbox of "run ended" deliveries. A delivery row is
-- written in the transaction that ends its run, deleted once delivered, and kept with
-- failed = 1 once its attempts are used up.
ALTER TABLE runs ADD COLUMN webhook TEXT;
CREATE TABLE webhook_deliveries (
  no INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  url TEXT NOT NULL,
  payload TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  failed INTEGER NOT NULL DEFAULT 0
);
-- The worker's only lookups: what is due, and when the next one is.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE failed = 0;
CREATE INDEX webhook_deliveries_by_run ON webhook_deliveries(run_id);
