-- Webhooks: a run's own URL, and the outbox of "run ended" deliveries. A delivery row is
-- written in the transaction that ends its run, deleted once delivered, and kept with
-- failed = true once its attempts are used up.
ALTER TABLE runs ADD COLUMN webhook text;
CREATE TABLE webhook_deliveries (
  no bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id uuid NOT NULL UNIQUE,
  run_id uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  url text NOT NULL,
  payload text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  last_error text,
  created_at timestamptz NOT NULL,
  failed boolean NOT NULL DEFAULT false
);
-- The worker's only lookups: what is due, and when the next one is.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE NOT failed;
-- The cascade from runs.
CREATE INDEX webhook_deliveries_by_run ON webhook_deliveries(run_id);
