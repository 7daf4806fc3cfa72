-- No foreign key references tasks or jobs. A foreign key makes PostgreSQL
-- check, for every row an UPDATE rewrites in the referenced table, whether
-- the key changed, which reads each row's old version once more: leasing and
-- completing rewrite every task row and completing rewrites its job's, so each
-- such key made both statements visibly slower, whether or not anything ever
-- referenced the row. The rows that named a task or a job are deleted by job
-- retention in the statement that deletes the job
-- (server/store/job-retention.ts), as dependency edges are (0007, 0009); a
-- scheduled job leaves scheduled_jobs when it starts or is cancelled.
ALTER TABLE task_hook_status DROP CONSTRAINT task_hook_status_task_id_fkey;
ALTER TABLE task_hook_subtasks DROP CONSTRAINT task_hook_subtasks_task_id_fkey;
ALTER TABLE file_tasks DROP CONSTRAINT file_tasks_task_id_fkey;
ALTER TABLE path_lists DROP CONSTRAINT path_lists_job_id_fkey;
ALTER TABLE scheduled_jobs DROP CONSTRAINT scheduled_jobs_job_id_fkey;
