import pg from 'pg';
import type { ConnectionOptions } from '../db/connection';
import { migrate, schemaState, type SchemaState } from '../db/migrator';

/**
 * SQL a restore drill runs in its scratch database, whose every object came from an untrusted
 * dump: views, functions, operators and the database's own settings may be the dump's. So the
 * caller connects as the drill's restore role (which the dump already ran as, and which has no
 * rights on the live database), never as the administrator or the app's role, and the session
 * looks up nothing in the dump's schemas before pg_catalog.
 */
export class DrillRepository {
  private async withClient<T>(connection: ConnectionOptions, database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({
      host: connection.host,
      port: connection.port,
      user: connection.user,
      password: connection.password,
      database,
      application_name: 'lifeboat-drill',
      // Over ALTER DATABASE ... SET search_path the dump may have left. pg_catalog, not named, is searched
      // first (built-ins win); new tables (the migrations') go to public.
      options: '-c search_path=public',
    });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Rows of each "schema.table" given: null for one that is not a plain or partitioned table (a view counted could run the dump's code). */
  async countRows(connection: ConnectionOptions, database: string, tables: string[]): Promise<Record<string, number | null>> {
    return this.withClient(connection, database, async (client) => {
      const counts: Record<string, number | null> = {};
      for (const table of tables) {
        const [schema, name] = table.includes('.') ? [table.slice(0, table.indexOf('.')), table.slice(table.indexOf('.') + 1)] : ['public', table];
        const { rows } = await client.query<{ kind: string }>(
          `SELECT c.relkind AS kind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2`,
          [schema, name],
        );
        if (rows[0]?.kind !== 'r' && rows[0]?.kind !== 'p') {
          counts[table] = null;
          continue;
        }
        const result = await client.query<{ count: string }>(`SELECT pg_catalog.count(*) AS count FROM ONLY ${client.escapeIdentifier(schema)}.${client.escapeIdentifier(name)}`);
        counts[table] = Number(result.rows[0].count);
      }
      return counts;
    });
  }

  /** This app's migrations, run in the scratch database; returns the ones that ran. */
  migrate(connection: ConnectionOptions, database: string): Promise<string[]> {
    return this.withClient(connection, database, (client) => migrate(client));
  }

  /** What the health check looks at: the schema's state and whether an admin can sign in. */
  health(connection: ConnectionOptions, database: string): Promise<{ state: SchemaState; hasAdmin: boolean }> {
    return this.withClient(connection, database, async (client) => {
      const state = await schemaState(client);
      const { rowCount } = await client.query('SELECT 1 FROM public.users WHERE is_admin AND deleted_at IS NULL LIMIT 1').catch(() => ({ rowCount: 0 }));
      return { state, hasAdmin: (rowCount ?? 0) > 0 };
    });
  }
}
