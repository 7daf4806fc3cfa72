-- Tasks over many files (docs/file-tasks.md): lists of input paths, the file
-- tasks of file workflows and the state each task reported for each path.
-- Rows are written in batches (one statement per page or report); no foreign
-- key is checked per path: rows of deleted lists and tasks are removed by the
-- statement-level triggers below.

CREATE TYPE path_state AS ENUM ('processed', 'skipped', 'aborted', 'failures', 'inprogress');

-- A list of input paths: given inline with a submit, staged page by page
-- before it (StagePaths), or listed from a storage location.
CREATE TABLE path_lists (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The job whose input it is; null while it is staged.
  job_id     bigint REFERENCES jobs (id) ON DELETE CASCADE,
  -- Paths in it (positions 1 to total).
  total      bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX path_lists_by_job ON path_lists (job_id);
CREATE INDEX path_lists_staged ON path_lists (created_at) WHERE job_id IS NULL;

CREATE TABLE path_list_items (
  list_id bigint NOT NULL,
  -- 1-based position in the list: a chunk of a workflow is a range of them.
  ord     bigint NOT NULL,
  -- Byte order ("C"): paths are compared by their bytes, without the
  -- database's collation, in every index lookup of a report.
  path    text COLLATE "C" NOT NULL,
  size    bigint,
  message text,
  -- The path object's other keys.
  extra   jsonb,
  PRIMARY KEY (list_id, ord)
) WITH (autovacuum_vacuum_cost_delay = 0);

-- A path is in a list once; reports name paths, and are checked against it.
CREATE UNIQUE INDEX path_list_items_by_path ON path_list_items (list_id, path);

-- One row per task of a file workflow.
CREATE TABLE file_tasks (
  task_id        bigint PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
  job_id         bigint NOT NULL,
  -- Position in the workflow and chunk, both from 0.
  step           integer NOT NULL,
  chunk          integer NOT NULL,
  -- The first task of a chunk reads positions first_ord to last_ord of a list.
  list_id        bigint,
  first_ord      bigint,
  last_ord       bigint,
  -- A later task reads what this task (the one before it) processed or skipped.
  source_task_id bigint,
  -- The site whose runners must run it; null for any.
  site           text,
  CHECK ((list_id IS NOT NULL) <> (source_task_id IS NOT NULL))
);

CREATE INDEX file_tasks_by_job ON file_tasks (job_id, step, chunk);

-- The state a file task reported for each of its paths, with the path object's
-- fields, so that the next task reads its input from here.
CREATE TABLE path_states (
  task_id bigint NOT NULL,
  path    text COLLATE "C" NOT NULL,
  state   path_state NOT NULL,
  message text,
  size    bigint,
  extra   jsonb,
  PRIMARY KEY (task_id, path)
) WITH (autovacuum_vacuum_cost_delay = 0);

CREATE FUNCTION sluice_forget_file_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM path_states p USING gone g WHERE p.task_id = g.task_id;
  RETURN NULL;
END $$;

CREATE TRIGGER file_tasks_forget AFTER DELETE ON file_tasks
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION sluice_forget_file_tasks();

CREATE FUNCTION sluice_forget_path_lists() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM path_list_items i USING gone g WHERE i.list_id = g.id;
  RETURN NULL;
END $$;

CREATE TRIGGER path_lists_forget AFTER DELETE ON path_lists
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION sluice_forget_path_lists();
