-- Ready work and running leases move out of the indexes of `tasks`, so that no
-- index of `tasks` names a column that leasing or completing a task changes
-- (state, deps_left, runner_id, lease_expires_at). Both updates are then HOT:
-- the new row version goes on the same page and no index gets a new entry. With
-- the two partial indexes, each update wrote a heap tuple and an entry in every
-- index of the table, and left all of them to vacuum.
--
-- ready_tasks: one row per task that is queued with no dependency left, exactly
-- (written in the statements that make a task ready or take that away). A lease
-- deletes the rows it takes.
CREATE TABLE ready_tasks (
  cluster_id integer NOT NULL,
  id         bigint NOT NULL,
  -- The task's identifier, so that leasing filters by what a runner can
  -- execute without reading `tasks`.
  name       text NOT NULL,
  major      integer NOT NULL,
  minor      integer NOT NULL,
  PRIMARY KEY (cluster_id, id)
) WITH (
  autovacuum_vacuum_scale_factor = 0.02,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.05,
  autovacuum_vacuum_cost_delay = 0
);

INSERT INTO ready_tasks (cluster_id, id, name, major, minor)
SELECT cluster_id, id, name, major, minor FROM tasks WHERE state = 'queued' AND deps_left = 0;

-- task_leases: one row per lease statement, naming the tasks it leased. Lease
-- expiry reads the rows whose expires_at passed and looks at their tasks (a
-- task's own lease_expires_at, extended by its runner, is the truth); a row
-- lives until none of its tasks is running, and its expires_at is moved to the
-- latest lease end among those still running.
CREATE TABLE task_leases (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  expires_at timestamptz NOT NULL,
  task_ids   bigint[] NOT NULL
) WITH (
  -- A lease of 500 tasks names 4 kB of ids: kept in the row, not compressed
  -- (toast_tuple_target: the most a row may take before it is compressed).
  toast_tuple_target = 8160,
  autovacuum_vacuum_cost_delay = 0
);

CREATE INDEX task_leases_by_expiry ON task_leases (expires_at);

INSERT INTO task_leases (expires_at, task_ids)
SELECT max(lease_expires_at), array_agg(id) FROM tasks WHERE lease_expires_at IS NOT NULL HAVING count(*) > 0;

DROP INDEX tasks_ready;
DROP INDEX tasks_lease_expiry;

-- Room on each page for a new version of every row: a lease updates the tasks
-- of a whole page in one statement, and the versions it leaves behind are
-- pruned when the completion reads the page.
ALTER TABLE tasks SET (fillfactor = 50);
