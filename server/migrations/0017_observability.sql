-- What runs: tasks' log lines and progress, and the runners connected to the
-- servers. None of these tables has a foreign key: job retention deletes their
-- rows with the job's (store/job-retention.ts), and the hot path never waits
-- on a check.

-- Lines tasks wrote while they executed, one row each, written one statement
-- per runner message. `id` orders a job's lines as the runners sent them; it
-- is read only through task_logs_by_job, so it has no index of its own (one
-- index entry less per line).
CREATE TABLE task_logs (
  id        bigint GENERATED ALWAYS AS IDENTITY,
  job_id    bigint NOT NULL,
  task_id   bigint NOT NULL,
  attempt   integer NOT NULL,
  level     smallint NOT NULL,
  logged_at timestamptz NOT NULL,
  message   text NOT NULL,
  fields    jsonb
);

CREATE INDEX task_logs_by_job ON task_logs (job_id, id);

-- A job's progress per label: the sums of what its tasks reported.
CREATE TABLE job_progress (
  job_id  bigint NOT NULL,
  label   text NOT NULL,
  -- Orders a job's labels as they first appeared.
  seq     bigint GENERATED ALWAYS AS IDENTITY,
  done    bigint NOT NULL DEFAULT 0,
  total   bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, label)
);

-- The runners connected to the servers of this database: a row per runner,
-- written when its session starts and deleted when it ends; the server holding
-- the session updates seen_at, last_heard_at and in_flight of all its runners
-- in one statement every few seconds. A server that died leaves rows whose
-- seen_at stops moving: they are not shown, and are deleted later.
CREATE TABLE runners (
  id            uuid PRIMARY KEY,
  -- The session that wrote the row: a session that ends deletes the row only
  -- if no newer session of the runner replaced it.
  session_id    uuid NOT NULL,
  server_id     text NOT NULL,
  name          text NOT NULL,
  host          text NOT NULL,
  cluster_id    integer NOT NULL,
  task_names    text[] NOT NULL,
  task_majors   integer[] NOT NULL,
  task_minors   integer[] NOT NULL,
  concurrency   integer NOT NULL,
  prefetch      integer NOT NULL,
  in_flight     integer NOT NULL DEFAULT 0,
  connected_at  timestamptz NOT NULL DEFAULT now(),
  -- When the runner last sent a message (as its server last said).
  last_heard_at timestamptz NOT NULL DEFAULT now(),
  -- When its server last said the session was open.
  seen_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX runners_by_cluster ON runners (cluster_id, id);

-- Jobs someone follows (TailJobLogs): servers that record results of these
-- jobs tell the followers with a NOTIFY on sluice_job_events. A follower's row
-- lasts until `until` unless its server extends it.
CREATE TABLE job_followers (
  job_id   bigint NOT NULL,
  follower uuid NOT NULL,
  until    timestamptz NOT NULL,
  PRIMARY KEY (job_id, follower)
);

-- The W3C trace context of a traced task (the span that submitted it), so that
-- the spans of its lease, execution and completion join its trace.
ALTER TABLE tasks ADD COLUMN traceparent text;

-- Retry backoff and time limits, per task (null: retry at once, no limit).
ALTER TABLE tasks ADD COLUMN retry_delay_ms integer, ADD COLUMN retry_factor real, ADD COLUMN retry_max_ms integer,
  ADD COLUMN timeout_ms integer;

-- Failed tasks waiting out their backoff before they go back into ready_tasks
-- (maintenance/retry-scheduler.ts moves them when due). Their rows in `tasks`
-- say queued; a task cancelled meanwhile is skipped when it comes due.
CREATE TABLE task_retries (
  task_id  bigint PRIMARY KEY,
  retry_at timestamptz NOT NULL
);

CREATE INDEX task_retries_due ON task_retries (retry_at);
