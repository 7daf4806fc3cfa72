/**
 * Runs a transaction again when PostgreSQL aborted it to break a deadlock or a
 * serialization conflict. Lock order (jobs by id, then their tasks) makes these
 * rare; they are still possible between multi-row updates of unrelated kinds.
 */
export async function retryOnDeadlock<T>(run: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await run();
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (i >= attempts || (code !== "40P01" && code !== "40001")) throw e;
    }
  }
}
