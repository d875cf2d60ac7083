-- Placeholder that keeps the numbering contiguous on the scaleout branch: the webhooks branch
-- adds the real 0004_webhooks.sql (take that one when merging).
SELECT 1;
