/**
 * The queue a task runs on, as the seed names it: `site.queue#function`, here
 * the runner's site, the task's cluster and the task's name.
 */
export class QueueName {
  constructor(
    /** The site of the runner ("" when it has none). */
    readonly site: string,
    /** The cluster (the seed's queue). */
    readonly cluster: string,
    /** The function: the task's name (`function` is a reserved word in parameters). */
    fn: string,
  ) {
    this.function = fn;
  }

  /** The function: the task's name. */
  readonly function: string;

  /** The seed's queue: the cluster. */
  get queue(): string {
    return this.cluster;
  }

  /** `site.queue#function`, e.g. `london.highpriority#Transcode`. */
  toString(): string {
    return formatQueueName(this.site, this.cluster, this.function);
  }

  /** Parses `site.queue#function`; throws TypeError saying what is wrong. */
  static parse(name: string): QueueName {
    return parseQueueName(name);
  }
}

const PART = /^[A-Za-z0-9_-]+$/;
const FUNCTION = /^[^\s#]+$/;

/**
 * `site.queue#function` (`queue#function` when the site is ""); throws
 * TypeError for parts that would not parse back.
 */
export function formatQueueName(site: string, queue: string, fn: string): string {
  if (site !== "" && !PART.test(site)) throw new TypeError(`site ${JSON.stringify(site)} must be letters, digits, "_" or "-"`);
  if (!PART.test(queue)) throw new TypeError(`queue ${JSON.stringify(queue)} must be letters, digits, "_" or "-"`);
  if (!FUNCTION.test(fn)) throw new TypeError(`function ${JSON.stringify(fn)} must be non-empty, without whitespace or "#"`);
  return site === "" ? `${queue}#${fn}` : `${site}.${queue}#${fn}`;
}

/** Parses `site.queue#function` (or `queue#function`, without a site) into its parts. */
export function parseQueueName(name: string): QueueName {
  const m = /^(?:([^.#]+)\.)?([^.#]+)#([^#]+)$/.exec(name);
  if (!m || (m[1] !== undefined && !PART.test(m[1])) || !PART.test(m[2]) || !FUNCTION.test(m[3])) {
    throw new TypeError(`queue name ${JSON.stringify(name)} is not "site.queue#function", e.g. "london.highpriority#custom"`);
  }
  return new QueueName(m[1] ?? "", m[2], m[3]);
}
