-- Finished jobs are deleted (tasks and dependencies with them) once they are
-- older than the retention setting; this index finds them.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
