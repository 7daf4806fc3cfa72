import type { Sql } from "postgres";
import { unstorableText } from "../validation.js";

export interface ClusterRow {
  id: number;
  slug: string;
  display_name: string;
  created_at: Date;
}

/** Creates a cluster; returns null when the slug is taken. */
export async function createCluster(sql: Sql, slug: string, displayName: string): Promise<ClusterRow | null> {
  const [row] = await sql<ClusterRow[]>`
    INSERT INTO clusters (slug, display_name) VALUES (${slug}, ${displayName})
    ON CONFLICT (slug) DO NOTHING
    RETURNING id, slug, display_name, created_at`;
  return row ?? null;
}

export async function getCluster(sql: Sql, slug: string): Promise<ClusterRow | null> {
  const [row] = await sql<ClusterRow[]>`SELECT id, slug, display_name, created_at FROM clusters WHERE slug = ${slug}`;
  return row ?? null;
}

export async function listClusters(sql: Sql): Promise<ClusterRow[]> {
  return sql<ClusterRow[]>`SELECT id, slug, display_name, created_at FROM clusters ORDER BY slug`;
}

/**
 * Deletes a cluster that no job, task or recurrent task refers to. The row lock
 * comes first: it waits for statements inserting jobs or tasks that name the
 * cluster (they hold it FOR KEY SHARE) to commit, so that the check after it
 * sees their rows, and makes later ones wait and then fail.
 */
export async function deleteCluster(sql: Sql, slug: string): Promise<"deleted" | "missing" | "in-use"> {
  return sql.begin(async (tx) => {
    const [row] = await tx<{ id: number }[]>`SELECT id FROM clusters WHERE slug = ${slug} FOR UPDATE`;
    if (!row) return "missing";
    const [used] = await tx`
      SELECT 1 FROM jobs WHERE cluster_id = ${row.id}
      UNION ALL SELECT 1 FROM tasks WHERE cluster_id = ${row.id}
      UNION ALL SELECT 1 FROM recurrent_tasks WHERE cluster_id = ${row.id} LIMIT 1`;
    if (used) return "in-use";
    await tx`DELETE FROM clusters WHERE id = ${row.id}`;
    return "deleted";
  });
}

/**
 * Maps cluster slugs to ids and back, caching what it has seen: clusters are
 * few and change rarely, and ids are never reused, so a stale entry can only
 * name a deleted cluster (and inserting with it then fails: on the foreign key
 * from jobs, or on the lock that statements inserting tasks take on the
 * clusters they name, migration 0011).
 */
export class ClusterDirectory {
  private readonly bySlug = new Map<string, number>();
  private readonly byId = new Map<number, string>();

  constructor(private readonly sql: Sql) {}

  /** Ids of the given slugs; slugs that do not exist are absent from the map. */
  async ids(slugs: readonly string[]): Promise<Map<string, number>> {
    // Text PostgreSQL cannot take (a NUL) names no cluster, and would fail the query.
    const missing = slugs.filter((s) => !this.bySlug.has(s) && unstorableText(s) === null);
    if (missing.length > 0) {
      const rows = await this.sql<{ id: number; slug: string }[]>`SELECT id, slug FROM clusters WHERE slug = ANY(${missing}::text[])`;
      for (const r of rows) this.remember(r.id, r.slug);
    }
    const out = new Map<string, number>();
    for (const s of slugs) {
      const id = this.bySlug.get(s);
      if (id !== undefined) out.set(s, id);
    }
    return out;
  }

  async id(slug: string): Promise<number | undefined> {
    return (await this.ids([slug])).get(slug);
  }

  async slug(id: number): Promise<string> {
    let slug = this.byId.get(id);
    if (slug === undefined) {
      const [row] = await this.sql<{ slug: string }[]>`SELECT slug FROM clusters WHERE id = ${id}`;
      slug = row?.slug ?? `#${id}`;
      if (row) this.remember(id, slug);
    }
    return slug;
  }

  forget(slug: string): void {
    const id = this.bySlug.get(slug);
    this.bySlug.delete(slug);
    if (id !== undefined) this.byId.delete(id);
  }

  private remember(id: number, slug: string): void {
    this.bySlug.set(slug, id);
    this.byId.set(id, slug);
  }
}
