import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type RecurrentTask, RecurrentTaskSchema, RecurrentTaskService } from "../../gen/sluice/v1/recurrent_task_service_pb.js";
import { type CronSchedule, CronError, parseCron } from "../cron.js";
import type { TaskSubmission } from "../../gen/sluice/v1/task_pb.js";
import { getLocations } from "../store/storage-locations.js";
import { compileGlob } from "../sources/glob.js";
import {
  type NewRecurrentTaskBase,
  type RecurrentTaskRow,
  createCronTask,
  createStorageEventTask,
  deleteRecurrentTask,
  getRecurrentTask,
  listRecurrentTasks,
  setPaused,
} from "../store/recurrent-tasks.js";
import { taskInput } from "../task-plan.js";
import { inputAsJson } from "./convert.js";
import { MAX_RETRIES_LIMIT, checkName, formatVersion, invalid, notFound, parseId, parseIdentifier } from "../validation.js";
import type { ClusterDirectory } from "../store/clusters.js";
import { type ServiceDeps, requireClusters } from "./deps.js";

const MAX_TRIGGERS = 100;

async function toProto(row: RecurrentTaskRow, clusters: ClusterDirectory): Promise<RecurrentTask> {
  return create(RecurrentTaskSchema, {
    id: row.id,
    name: row.name,
    cluster: await clusters.slug(row.cluster_id),
    task: {
      identifier: { name: row.task_name, version: formatVersion(row.major, row.minor) },
      input: row.input,
      inputJson: inputAsJson(row.input),
      maxRetries: row.max_retries,
      display: row.display ?? "",
    },
    cronTriggers: row.triggers.map((t) => ({
      expression: t.expression,
      timeZone: t.time_zone,
      // 'infinity' (paused, or never again) has no timestamp.
      nextTickAt: Number.isFinite(Date.parse(t.next_tick_at)) ? timestampFromDate(new Date(t.next_tick_at)) : undefined,
    })),
    storageEventTriggers: row.storage_triggers.map((t) => ({ locationId: t.location_id, glob: t.glob })),
    paused: row.paused,
    createdAt: timestampFromDate(row.created_at),
    lastTickAt: row.last_tick_at ? timestampFromDate(row.last_tick_at) : undefined,
    lastJobId: row.last_job_id ?? "",
  });
}

/** A cron trigger of a request, parsed; InvalidArgument naming the field when it cannot be. */
function cronOf(expression: string, timeZone: string, where: string, now: Date): CronSchedule {
  try {
    return parseCron(expression, timeZone, now);
  } catch (e) {
    if (e instanceof CronError) throw invalid(`${where}.${e.field}: ${e.message}`);
    throw e;
  }
}

export function recurrentTaskService({ sql, reads, clusters, clock }: ServiceDeps): ServiceImpl<typeof RecurrentTaskService> {
  async function find(idOrName: string): Promise<RecurrentTaskRow> {
    if (idOrName === "") throw invalid("id_or_name is empty: name a recurrent task by its id or its name");
    const row = await getRecurrentTask(sql, idOrName);
    if (!row) throw notFound(`recurrent task ${JSON.stringify(idOrName)} does not exist`);
    return row;
  }

  /** Checks the name, cluster and task prototype of a new recurrent task. */
  async function prototype(name: string, clusterSlug: string, task: TaskSubmission | undefined): Promise<NewRecurrentTaskBase> {
    checkName(name, "recurrent task name");
    const cluster = clusterSlug === "" ? "default" : clusterSlug;
    if (!task?.identifier) throw invalid("task.identifier is missing: name the task each job starts from");
    const id = parseIdentifier(task.identifier.name, task.identifier.version, "task");
    const input = taskInput(task, () => "task");
    if (task.maxRetries > MAX_RETRIES_LIMIT) throw invalid(`task: max_retries is ${task.maxRetries}; the limit is ${MAX_RETRIES_LIMIT}`);
    if (task.dependsOn.length > 0) throw invalid("task: depends_on has nothing to name in a recurrent task's root task; leave it empty");
    const clusterId = (await requireClusters(clusters, [cluster])).get(cluster)!;
    return {
      name,
      clusterId,
      taskName: id.name,
      major: id.major,
      minor: id.minor,
      display: task.display === "" ? null : task.display,
      input,
      maxRetries: task.maxRetries,
    };
  }

  const taken = (name: string) =>
    new ConnectError(`a recurrent task named ${JSON.stringify(name)} already exists; delete it first or choose another name`, Code.AlreadyExists);

  return {
    async createStorageEventTask(req) {
      const base = await prototype(req.name, req.cluster, req.task);
      if (req.triggers.length === 0) throw invalid("triggers is empty: give at least one (storage location, glob) trigger");
      if (req.triggers.length > MAX_TRIGGERS) throw invalid(`triggers has ${req.triggers.length} entries; the limit is ${MAX_TRIGGERS}`);
      const triggers = req.triggers.map((t, i) => {
        compileGlob(t.glob, `triggers[${i}].glob`);
        return { locationId: parseId(t.locationId, `triggers[${i}].location_id`), glob: t.glob };
      });
      const known = await getLocations(sql, [...new Set(triggers.map((t) => t.locationId))]);
      for (const [i, t] of triggers.entries()) {
        if (!known.has(t.locationId)) {
          throw notFound(`triggers[${i}].location_id: storage location ${t.locationId} does not exist; register it first (sluice storage register)`);
        }
      }
      const created = await createStorageEventTask(sql, base, triggers);
      if (created === null) throw taken(req.name);
      return { recurrentTask: await toProto((await getRecurrentTask(sql, created))!, clusters) };
    },

    async createCronTask(req) {
      const base = await prototype(req.name, req.cluster, req.task);
      if (req.cronTriggers.length === 0) throw invalid("cron_triggers is empty: give at least one cron expression");
      if (req.cronTriggers.length > MAX_TRIGGERS) throw invalid(`cron_triggers has ${req.cronTriggers.length} entries; the limit is ${MAX_TRIGGERS}`);
      const now = new Date(clock.now());
      const crons = req.cronTriggers.map((t, i) => cronOf(t.expression, t.timeZone, `cron_triggers[${i}]`, now));
      const created = await createCronTask(sql, { ...base, crons }, now);
      if (created === null) throw taken(req.name);
      return { recurrentTask: await toProto((await getRecurrentTask(sql, created))!, clusters) };
    },

    async listRecurrentTasks() {
      const rows = await listRecurrentTasks(reads);
      const recurrentTasks = [];
      for (const r of rows) recurrentTasks.push(await toProto(r, clusters));
      return { recurrentTasks };
    },

    async getRecurrentTask(req) {
      return { recurrentTask: await toProto(await find(req.idOrName), clusters) };
    },

    async pauseRecurrentTask(req) {
      const row = await find(req.idOrName);
      await setPaused(sql, row.id, true, new Date(clock.now()));
      return { recurrentTask: await toProto((await getRecurrentTask(sql, row.id))!, clusters) };
    },

    async resumeRecurrentTask(req) {
      const row = await find(req.idOrName);
      await setPaused(sql, row.id, false, new Date(clock.now()));
      return { recurrentTask: await toProto((await getRecurrentTask(sql, row.id))!, clusters) };
    },

    async deleteRecurrentTask(req) {
      const row = await find(req.idOrName);
      if (!(await deleteRecurrentTask(sql, row.id))) throw notFound(`recurrent task ${JSON.stringify(req.idOrName)} does not exist`);
      return {};
    },
  };
}
