-- Jobs that start by themselves: one-off scheduled jobs and cron tasks.

ALTER TYPE job_state ADD VALUE IF NOT EXISTS 'scheduled';

CREATE TABLE recurrent_tasks (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  cluster_id  integer NOT NULL REFERENCES clusters (id),
  -- The task prototype every job starts from.
  task_name   text NOT NULL,
  major       integer NOT NULL,
  minor       integer NOT NULL,
  display     text,
  input       bytea NOT NULL,
  max_retries integer NOT NULL DEFAULT 0,
  paused      boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cron_triggers (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  recurrent_task_id bigint NOT NULL REFERENCES recurrent_tasks (id) ON DELETE CASCADE,
  expression        text NOT NULL,
  time_zone         text NOT NULL,
  -- The next tick to submit a job for. A server finds due triggers through the
  -- index below and sleeps until the earliest one.
  next_tick_at      timestamptz NOT NULL
);

CREATE INDEX cron_triggers_due ON cron_triggers (next_tick_at);
CREATE INDEX cron_triggers_by_task ON cron_triggers (recurrent_task_id);

ALTER TABLE jobs
  ADD COLUMN start_at timestamptz,
  -- Kept when the recurrent task is deleted: its jobs stay, without the link.
  ADD COLUMN recurrent_task_id bigint REFERENCES recurrent_tasks (id) ON DELETE SET NULL,
  ADD COLUMN tick_at timestamptz;

-- One job per recurrent task and tick, whichever server submits it.
CREATE UNIQUE INDEX jobs_one_per_tick ON jobs (recurrent_task_id, tick_at) WHERE tick_at IS NOT NULL;

-- Scheduled jobs wait here, with their validated task plan, until they are due;
-- their tasks are created then, so a million of them never touch the task queue.
CREATE TABLE scheduled_jobs (
  job_id   bigint PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  start_at timestamptz NOT NULL,
  plan     jsonb NOT NULL
);

CREATE INDEX scheduled_jobs_due ON scheduled_jobs (start_at);
