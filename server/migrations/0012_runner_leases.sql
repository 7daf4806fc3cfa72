-- Which runner each lease statement leased to, so that a runner's session can
-- find every task leased to it (to count them against its capacity when it
-- reconnects, and to queue again those it never received) without an index on
-- tasks.runner_id, which would make every lease and completion a non-HOT update.
ALTER TABLE task_leases ADD COLUMN runner_id uuid;
CREATE INDEX task_leases_by_runner ON task_leases (runner_id);
