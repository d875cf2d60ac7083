-- Retention (CHATBOT_EVENT_RETENTION): a run whose events were pruned keeps the seq of its last
-- event here (NULL: not pruned), so last_seq still tells the truth.
ALTER TABLE runs ADD COLUMN events_pruned_seq INTEGER;
CREATE INDEX runs_ended ON runs(finished_at) WHERE events_pruned_seq IS NULL AND finished_at IS NOT NULL;
