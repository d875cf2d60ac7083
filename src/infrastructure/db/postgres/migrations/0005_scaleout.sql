-- Several instances on one database (CHATBOT_INSTANCES=multi): the instance executing a run
-- and how long its claim holds. The owner renews the lease; once it lapses any instance
-- finalizes the run ("executor lost"). NULL for runs of single-instance mode.
ALTER TABLE runs ADD COLUMN owner text;
ALTER TABLE runs ADD COLUMN lease_until timestamptz;
-- Renewal (by owner) and the search for lapsed leases look at running runs only.
CREATE INDEX runs_running_owner ON runs(owner) WHERE status = 'running';
CREATE INDEX runs_running_lease ON runs(lease_until) WHERE status = 'running';
-- The claim: the oldest queued run whose thread has nothing running and nothing queued before it.
CREATE INDEX runs_thread_active ON runs(thread_id, status, no) WHERE status IN ('queued', 'running');
