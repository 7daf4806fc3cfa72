import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client as ConnectClient } from "@connectrpc/connect";
import { type RecurrentTask as RecurrentTaskMessage, RecurrentTaskService } from "../gen/sluice/v1/recurrent_task_service_pb.js";
import { type Task, type TaskIdentifier, identifierOf, serializeInput } from "./task.js";

export interface CronTrigger {
  /** Five fields, or six with seconds first. */
  expression: string;
  /** IANA time zone the expression is read in. */
  timeZone: string;
  /** The next tick; undefined while paused. */
  nextTickAt?: Date;
}

/** A task prototype that submits jobs by itself. */
export interface RecurrentTaskInfo {
  id: string;
  name: string;
  cluster: string;
  identifier: TaskIdentifier;
  /** The prototype's input fields. */
  input: unknown;
  maxRetries: number;
  cronTriggers: CronTrigger[];
  paused: boolean;
  createdAt: Date;
  lastTickAt?: Date;
  lastJobId?: string;
}

export interface CronTaskOptions {
  /** IANA time zone for every expression (default UTC). */
  timeZone?: string;
  /** Retries of each job's root task. */
  maxRetries?: number;
}

const decoder = new TextDecoder();

function fromMessage(m: RecurrentTaskMessage): RecurrentTaskInfo {
  let input: unknown;
  try {
    input = JSON.parse(decoder.decode(m.task?.input));
  } catch {
    input = m.task?.input;
  }
  return {
    id: m.id,
    name: m.name,
    cluster: m.cluster,
    identifier: { name: m.task?.identifier?.name ?? "", version: m.task?.identifier?.version ?? "" },
    input,
    maxRetries: m.task?.maxRetries ?? 0,
    cronTriggers: m.cronTriggers.map((t) => ({
      expression: t.expression,
      timeZone: t.timeZone,
      nextTickAt: t.nextTickAt ? timestampDate(t.nextTickAt) : undefined,
    })),
    paused: m.paused,
    createdAt: m.createdAt ? timestampDate(m.createdAt) : new Date(0),
    lastTickAt: m.lastTickAt ? timestampDate(m.lastTickAt) : undefined,
    lastJobId: m.lastJobId || undefined,
  };
}

type Ref = string | { id: string };
const ref = (r: Ref) => (typeof r === "string" ? r : r.id);

/** Creates, lists, pauses, resumes and deletes recurrent tasks. */
export class RecurrentTaskClient {
  constructor(private readonly api: ConnectClient<typeof RecurrentTaskService>) {}

  /**
   * Submits a job of `task` at every tick of `cron` (one expression or several),
   * named after `name` and the tick time, to `cluster`. Exactly one job per
   * tick, however many servers run; a tick missed while no server ran is
   * submitted once when one comes back (only the latest missed tick).
   */
  async createRecurringCronTask(name: string, cluster: string, task: Task<any>, cron: string | readonly string[], options: CronTaskOptions = {}): Promise<RecurrentTaskInfo> {
    const expressions = typeof cron === "string" ? [cron] : cron;
    const res = await this.api.createCronTask({
      name,
      cluster,
      task: { identifier: identifierOf(task), input: serializeInput(task), maxRetries: options.maxRetries ?? 0 },
      cronTriggers: expressions.map((expression) => ({ expression, timeZone: options.timeZone ?? "" })),
    });
    return fromMessage(res.recurrentTask!);
  }

  /** Every recurrent task, oldest first. */
  async list(): Promise<RecurrentTaskInfo[]> {
    return (await this.api.listRecurrentTasks({})).recurrentTasks.map(fromMessage);
  }

  /** A recurrent task by id or name. */
  async get(idOrName: Ref): Promise<RecurrentTaskInfo> {
    return fromMessage((await this.api.getRecurrentTask({ idOrName: ref(idOrName) })).recurrentTask!);
  }

  /** Stops submitting jobs; ticks while paused are skipped. */
  async pause(task: Ref): Promise<RecurrentTaskInfo> {
    return fromMessage((await this.api.pauseRecurrentTask({ idOrName: ref(task) })).recurrentTask!);
  }

  /** Submits jobs again from the next tick on. */
  async resume(task: Ref): Promise<RecurrentTaskInfo> {
    return fromMessage((await this.api.resumeRecurrentTask({ idOrName: ref(task) })).recurrentTask!);
  }

  /** Deletes a recurrent task (by id, name or the object). Jobs it submitted stay, queued ones too. */
  async delete(task: Ref): Promise<void> {
    await this.api.deleteRecurrentTask({ idOrName: ref(task) });
  }
}
