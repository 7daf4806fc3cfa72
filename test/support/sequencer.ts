import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * The files that take longest, started first so that the workers finish
 * together: vitest orders files by the durations of an earlier run, which a
 * fresh checkout (CI) does not have, and by size otherwise, which put the
 * fault suite, short in lines and long in time, last.
 */
const LONGEST_FIRST = ["faults/faults", "packages", "job-cache", "storage-events", "console", "file-runners", "cli", "connections", "leases", "recurrent"];

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = LONGEST_FIRST.findIndex((name) => f.moduleId.endsWith(`/test/${name}.test.ts`));
      return i === -1 ? LONGEST_FIRST.length : i;
    };
    return sorted.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}
