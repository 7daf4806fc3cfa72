-- A submit may carry an idempotency key: a second submit with the same key
-- answers with the job the first created. The unique index is the rule; a
-- batch that names a key already used fails it, and the submit looks the
-- existing jobs up (server/store/submit-job.ts).
ALTER TABLE jobs ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
