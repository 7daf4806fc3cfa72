-- Every statement that inserts tasks names a job it inserts in the same
-- statement (submits) or holds locked in the same transaction (subtasks of a
-- completion, jobs whose start time came), and only job retention deletes
-- jobs, together with their tasks in the same statement
-- (server/maintenance/job-retention.ts). The foreign key from tasks to jobs
-- checked nothing that could fail, at one lookup and lock of the job row per
-- task: 34 of 151 ms of a submit of 10,000 tasks, as much for a task that
-- submits 10,000 subtasks. (The one to clusters stays: clusters can be
-- deleted, and a submit may hold a cluster id from before.)
ALTER TABLE tasks DROP CONSTRAINT tasks_job_id_fkey;
