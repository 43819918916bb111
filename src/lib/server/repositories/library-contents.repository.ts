import type { Database } from '../db/database';

export interface AssetPathRow {
  id: string;
  original_path: string | null;
  thumbnail_path: string | null;
  preview_path: string | null;
  encoded_video_path: string | null;
}

/** What the live database holds, in the terms of the restore preview and the files report. SQL only. */
export class LibraryContentsRepository {
  constructor(private readonly db: Database) {}

  async users(): Promise<{ count: number; admins: string[] }> {
    const { rows } = await this.db.query<{ count: string; admins: string[] | null }>(
      `SELECT count(*) AS count, array_agg(email ORDER BY email) FILTER (WHERE is_admin) AS admins FROM users WHERE deleted_at IS NULL`,
    );
    return { count: Number(rows[0].count), admins: rows[0].admins ?? [] };
  }

  /**
   * Exact rows of every table outside the system schemas, as "schema.table": one query, one
   * worker (a preview reads the dump at the same time; parallel workers would take its cores).
   */
  async tableRows(): Promise<Record<string, number>> {
    return this.db.withClient(async (client) => {
      const { rows: tables } = await client.query<{ schema: string; name: string }>(
        `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
         ORDER BY 1, 2`,
      );
      if (!tables.length) return {};
      const ident = (part: string) => client.escapeIdentifier(part);
      const union = tables.map((t, i) => `SELECT ${i} AS i, count(*) AS n FROM ${ident(t.schema)}.${ident(t.name)}`).join(' UNION ALL ');
      await client.query('BEGIN READ ONLY');
      try {
        await client.query('SET LOCAL max_parallel_workers_per_gather = 0');
        const { rows } = await client.query<{ i: number; n: string }>(union);
        const counts: Record<string, number> = {};
        for (const row of rows) counts[`${tables[row.i].schema}.${tables[row.i].name}`] = Number(row.n);
        return counts;
      } finally {
        await client.query('ROLLBACK');
      }
    });
  }

  /** Every asset's file paths, a page at a time (keyset on id): memory stays one page. */
  async *assetPaths(pageSize = 10_000): AsyncGenerator<AssetPathRow[]> {
    let after: string | null = null;
    for (;;) {
      const { rows }: { rows: AssetPathRow[] } = await this.db.query<AssetPathRow>(
        `SELECT id, original_path, thumbnail_path, preview_path, encoded_video_path FROM assets
         WHERE $1::uuid IS NULL OR id > $1::uuid ORDER BY id LIMIT $2`,
        [after, pageSize],
      );
      if (!rows.length) return;
      yield rows;
      after = rows[rows.length - 1].id;
      if (rows.length < pageSize) return;
    }
  }
}
