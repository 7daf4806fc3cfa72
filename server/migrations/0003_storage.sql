-- Storage locations and storage event tasks.

CREATE TYPE storage_type AS ENUM ('gcs', 's3', 'fs');

CREATE TABLE storage_locations (
  id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type                 storage_type NOT NULL,
  location             text NOT NULL,
  endpoint             text NOT NULL DEFAULT '',
  region               text NOT NULL DEFAULT '',
  sqs_queue_url        text NOT NULL DEFAULT '',
  -- Secret that push notifications for this location must carry.
  push_token           text NOT NULL,
  external_watcher     boolean NOT NULL DEFAULT false,
  -- 0: never list the location.
  reconcile_interval_s integer NOT NULL,
  -- When a server should next list it; one server takes each listing.
  next_reconcile_at    timestamptz,
  -- Objects modified before this were covered by an earlier listing.
  reconciled_until     timestamptz NOT NULL DEFAULT now(),
  created_at           timestamptz NOT NULL DEFAULT now(),
  UNIQUE (type, location, endpoint)
);

CREATE INDEX storage_locations_reconcile ON storage_locations (next_reconcile_at) WHERE reconcile_interval_s > 0;

CREATE TABLE storage_triggers (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  recurrent_task_id bigint NOT NULL REFERENCES recurrent_tasks (id) ON DELETE CASCADE,
  -- A location in use by a trigger cannot be deleted.
  location_id       bigint NOT NULL REFERENCES storage_locations (id),
  glob              text NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX storage_triggers_by_location ON storage_triggers (location_id);
CREATE INDEX storage_triggers_by_task ON storage_triggers (recurrent_task_id);

-- One row per trigger and object version that started a job: the primary key
-- is what makes a second job for the same version impossible, however often
-- and from wherever its event arrives.
CREATE TABLE storage_events (
  trigger_id bigint NOT NULL REFERENCES storage_triggers (id) ON DELETE CASCADE,
  key        text NOT NULL,
  version    text NOT NULL,
  job_id     bigint NOT NULL,
  seen_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (trigger_id, key, version)
);

-- The storage event a task handles.
ALTER TABLE tasks ADD COLUMN trigger jsonb;

-- The last job of each recurrent task, for listing them.
CREATE INDEX jobs_by_recurrent_task ON jobs (recurrent_task_id, id) WHERE recurrent_task_id IS NOT NULL;
