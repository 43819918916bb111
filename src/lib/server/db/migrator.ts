import type pg from 'pg';
import { migrations as knownMigrations, type Migration } from './migrations/index';

export class SchemaTooNewError extends Error {
  constructor(readonly unknown: string[]) {
    super(
      `The database schema is newer than this version of Lifeboat knows (unknown migrations: ${unknown.join(', ')}). ` +
        'Upgrade Lifeboat to the version that made this database, or restore a backup made by this version or an older one.',
    );
    this.name = 'SchemaTooNewError';
  }
}

export interface SchemaState {
  applied: string[];
  pending: Migration[];
  unknown: string[];
  /** Version of the newest applied known migration, null for an empty database. */
  version: string | null;
}

const TABLE = 'migrations';

async function appliedNames(client: pg.ClientBase): Promise<string[]> {
  const { rows } = await client.query<{ exists: boolean }>(`SELECT to_regclass('public.${TABLE}') IS NOT NULL AS exists`);
  if (!rows[0].exists) return [];
  const result = await client.query<{ name: string }>(`SELECT name FROM ${TABLE} ORDER BY name`);
  return result.rows.map((row) => row.name);
}

export async function schemaState(client: pg.ClientBase, migrations: Migration[] = knownMigrations): Promise<SchemaState> {
  const applied = await appliedNames(client);
  const known = new Set(migrations.map((m) => m.name));
  const unknown = applied.filter((name) => !known.has(name));
  const pending = migrations.filter((m) => !applied.includes(m.name));
  const done = migrations.filter((m) => applied.includes(m.name));
  return { applied, pending, unknown, version: done.length ? done[done.length - 1].version : null };
}

/**
 * Applies pending migrations in order, each in its own transaction, and records each one.
 * Refuses a database that has migrations this app does not know (made by a newer version).
 * `upTo` stops after the migrations of that version (used to make older-version databases).
 */
export async function migrate(
  client: pg.ClientBase,
  options: { upTo?: string; migrations?: Migration[]; log?: (line: string) => void } = {},
): Promise<string[]> {
  const migrations = options.migrations ?? knownMigrations;
  // The web server and the command line may start at the same moment: one migrates, the other waits.
  // Qualified and typed: a restored database may define its own public.pg_advisory_lock(text).
  await client.query('SELECT pg_catalog.pg_advisory_lock($1::bigint)', [MIGRATION_LOCK]);
  try {
    return await migrateLocked(client, migrations, options);
  } finally {
    await client.query('SELECT pg_catalog.pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK]).catch(() => undefined);
  }
}

/** An arbitrary constant key for the advisory lock ("lifeboat" in ASCII). */
const MIGRATION_LOCK = 0x6c696665626f6174n.toString();

async function migrateLocked(client: pg.ClientBase, migrations: Migration[], options: { upTo?: string; log?: (line: string) => void }): Promise<string[]> {
  await client.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (name varchar PRIMARY KEY, version varchar NOT NULL, executed_at timestamptz NOT NULL DEFAULT now())`);
  const state = await schemaState(client, migrations);
  if (state.unknown.length) throw new SchemaTooNewError(state.unknown);
  const ran: string[] = [];
  for (const migration of state.pending) {
    if (options.upTo && compareVersion(migration.version, options.upTo) > 0) break;
    options.log?.(`Running migration ${migration.name} (schema ${migration.version})`);
    await client.query('BEGIN');
    try {
      await client.query(migration.sql);
      await client.query(`INSERT INTO ${TABLE} (name, version) VALUES ($1, $2)`, [migration.name, migration.version]);
      await client.query(
        `INSERT INTO system_metadata (key, value) VALUES ('version-history', jsonb_build_array(jsonb_build_object('version', $1::text, 'createdAt', now())))
         ON CONFLICT (key) DO UPDATE SET value = system_metadata.value || EXCLUDED.value`,
        [migration.version],
      );
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw new Error(`Migration ${migration.name} failed: ${(error as Error).message}`);
    }
    ran.push(migration.name);
  }
  return ran;
}

function compareVersion(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}
