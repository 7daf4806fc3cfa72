-- A job's completion rewrites its row (state, open tasks, finish time). With
-- an index on finished_at that update changed an indexed column, so it could
-- not be a HOT update: every completion of a one-task job wrote a new entry
-- in every index of jobs and left the old ones to vacuum. No index of jobs
-- names a column that completing a job changes any more:
--
-- - job retention finds finished jobs through jobs_by_created (a job finished
--   before a time was created before it);
-- - the console's throughput comes from job_finish_counts, per cluster and
--   minute, which the completion that finishes jobs adds to.
CREATE TABLE job_finish_counts (
  minute     timestamptz NOT NULL,
  cluster_id integer NOT NULL,
  -- The database backend that counted: each connection adds to a row of its
  -- own, so concurrent completions never wait on one another's counts.
  backend    integer NOT NULL,
  completed  integer NOT NULL DEFAULT 0,
  failed     integer NOT NULL DEFAULT 0,
  PRIMARY KEY (minute, cluster_id, backend)
);

INSERT INTO job_finish_counts (minute, cluster_id, backend, completed, failed)
SELECT date_trunc('minute', finished_at), cluster_id, 0,
       count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'failed')
FROM jobs
WHERE finished_at >= now() - interval '2 hours' AND state IN ('completed', 'failed')
GROUP BY 1, 2;

DROP INDEX jobs_finished;

-- Room on each page for a new version of every row on it: one completion
-- statement finishes whole pages of one-task jobs at once, and the versions it
-- replaces cannot be pruned to make room until it has committed. A finished
-- job's row is a little larger than a queued one's (start and finish times
-- set), so half a page is not quite enough. Pages already written keep their
-- layout.
ALTER TABLE jobs SET (fillfactor = 45);
