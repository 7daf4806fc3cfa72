-- Dependency edges are written only in the statement that inserts both of
-- their tasks (siblings of one job), so their foreign keys checked nothing that
-- could fail, at two index lookups per edge: 260 of 580 ms when a task submits
-- 10,000 subtasks and one task after all of them. Job retention deletes the
-- edges of the jobs it deletes itself (server/maintenance/job-retention.ts).
ALTER TABLE task_dependencies
  DROP CONSTRAINT task_dependencies_depends_on_fkey,
  DROP CONSTRAINT task_dependencies_task_id_fkey;
