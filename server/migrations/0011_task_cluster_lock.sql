-- The foreign key from tasks to clusters looked up and locked the cluster row
-- once per task: a third of a submit of 10,000 tasks (without the key 378 ->
-- 257 ms; with the lock below instead 354 -> 272 ms), as much
-- for a task that submits 10,000 subtasks. Every statement that inserts tasks
-- now locks the clusters they name once each, as the key's check did (FOR KEY
-- SHARE: a DELETE of the cluster waits for the insert to commit, and then
-- finds the tasks: server/store/clusters.ts), and fails as the key would have
-- when one of them no longer exists (server/store/insert-tasks.ts). Statements
-- that insert a task with its own job's cluster (cron ticks, storage events)
-- lock it through the key from jobs to clusters, which stays.
CREATE FUNCTION sluice_clusters_exist(existing bigint, named bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF existing < named THEN
    RAISE EXCEPTION 'a cluster the tasks name does not exist (it was deleted)'
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN true;
END $$;

ALTER TABLE tasks DROP CONSTRAINT tasks_cluster_id_fkey;
