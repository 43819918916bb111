import pg from 'pg';
import type { ConnectionOptions } from '../db/connection';
import { migrate, schemaState, type SchemaState } from '../db/migrator';

/** SQL a restore drill runs in its scratch database. */
export class DrillRepository {
  private async withClient<T>(connection: ConnectionOptions, database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ host: connection.host, port: connection.port, user: connection.user, password: connection.password, database, application_name: 'lifeboat-drill' });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Rows of each "schema.table" given (null for a table that is not there). */
  async countRows(connection: ConnectionOptions, database: string, tables: string[]): Promise<Record<string, number | null>> {
    return this.withClient(connection, database, async (client) => {
      const counts: Record<string, number | null> = {};
      for (const table of tables) {
        const [schema, name] = table.includes('.') ? [table.slice(0, table.indexOf('.')), table.slice(table.indexOf('.') + 1)] : ['public', table];
        const { rows } = await client.query<{ oid: string | null }>('SELECT to_regclass($1)::oid AS oid', [`${client.escapeIdentifier(schema)}.${client.escapeIdentifier(name)}`]);
        if (!rows[0]?.oid) {
          counts[table] = null;
          continue;
        }
        const result = await client.query<{ count: string }>(`SELECT count(*) AS count FROM ${client.escapeIdentifier(schema)}.${client.escapeIdentifier(name)}`);
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
      const { rowCount } = await client.query('SELECT 1 FROM users WHERE is_admin AND deleted_at IS NULL LIMIT 1').catch(() => ({ rowCount: 0 }));
      return { state, hasAdmin: (rowCount ?? 0) > 0 };
    });
  }
}
