-- Leasing picks ready tasks in id order. Ordered by id, the planner may walk the
-- primary key and filter instead of using tasks_ready, which it prefers after an
-- ANALYZE of a full queue, and which then reads every finished task in front of
-- the ready ones on every lease (quadratic in the queue's length). Ordered by
-- (id + 0), which only this index provides, the lease stays on the small index of
-- ready tasks whatever the statistics say.
DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (cluster_id, (id + 0)) WHERE state = 'queued' AND deps_left = 0;
