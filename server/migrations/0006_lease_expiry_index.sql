-- Completions name their tasks by id and check `state = 'running'`. With the
-- lease-expiry index partial on exactly that predicate, a generic plan made
-- while statistics said nothing was running (an ANALYZE of a full queue) walked
-- this index as the outer side of a nested loop and compared every running
-- task with every reported one: 250,000 comparisons and 80 ms for a batch of
-- 500. Partial on `lease_expires_at IS NOT NULL` instead (set exactly while a
-- task is running, NULL in every other state), the index serves lease expiry
-- (`lease_expires_at < now()` implies it) and no statement that only checks the
-- state can pick it, so completions look their tasks up by primary key.
DROP INDEX tasks_lease_expiry;
CREATE INDEX tasks_lease_expiry ON tasks (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
