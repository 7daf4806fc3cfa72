-- The job hook (docs/process-tasks.md): what process tasks post to the server.

-- The key every server derives the secrets of attempts from: one row, made by
-- the first server that starts (randomness from the server, not from SQL).
CREATE TABLE job_hook_keys (
  id  integer PRIMARY KEY CHECK (id = 1),
  key bytea NOT NULL
);

-- The latest status and output tails of a task, from its latest attempt that
-- posted any. Kept out of `tasks`, whose rows leasing and completing rewrite.
CREATE TABLE task_hook_status (
  task_id     bigint PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
  lease       integer NOT NULL,
  status      jsonb,
  status_at   timestamptz,
  stdout_tail text,
  stderr_tail text
);

-- Subtasks an attempt posted, created when the attempt completes successfully
-- (TaskSuccess.job_hook_subtasks): position is the index dependencies name.
CREATE TABLE task_hook_subtasks (
  task_id    bigint NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  lease      integer NOT NULL,
  position   integer NOT NULL,
  submission jsonb NOT NULL,
  PRIMARY KEY (task_id, lease, position)
);

-- Content uploaded through job hooks, stored once by its MD5 in the server's
-- data folder (job-files/).
CREATE TABLE job_file_blobs (
  hash       text PRIMARY KEY,
  size       bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Which content (store, uuid, property, index) names. The attempt that
-- uploaded it is recorded, not referenced: files outlive their jobs.
CREATE TABLE job_files (
  store      text NOT NULL,
  uuid       text NOT NULL,
  property   text NOT NULL,
  idx        integer NOT NULL,
  hash       text NOT NULL REFERENCES job_file_blobs (hash),
  metadata   jsonb NOT NULL DEFAULT '{}',
  task_id    bigint NOT NULL,
  lease      integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (store, uuid, property, idx)
);

-- Uploads announced (PUT upload) whose bytes have not come yet; the id in the
-- upload URL is the capability to send them.
CREATE TABLE job_file_uploads (
  id         uuid PRIMARY KEY,
  task_id    bigint NOT NULL,
  lease      integer NOT NULL,
  store      text NOT NULL,
  uuid       text NOT NULL,
  property   text NOT NULL,
  hash       text NOT NULL,
  challenge  text NOT NULL,
  metadata   jsonb NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX job_file_uploads_by_expiry ON job_file_uploads (expires_at);
