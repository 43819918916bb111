import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { Lifeboat } from '../src/lib/server/app';
import { loadConfig } from '../src/lib/server/config';
import { migrate, schemaState, SchemaTooNewError } from '../src/lib/server/db/migrator';
import { LATEST_SCHEMA_VERSION, migrations } from '../src/lib/server/db/migrations/index';
import { createDatabase, dropDatabase, testCluster, withClient } from './helpers/pg';

const databases: string[] = [];
async function freshDatabase(): Promise<string> {
  const name = await createDatabase('mig');
  databases.push(name);
  return name;
}
afterAll(async () => {
  for (const name of databases) await dropDatabase(name);
});

const tableExists = async (client: pg.Client, table: string) =>
  (await client.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [`public.${table}`])).rows[0].exists;

const columnExists = async (client: pg.Client, table: string, column: string) =>
  ((await client.query('SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = $2', [table, column])).rowCount ?? 0) > 0;

describe('migrations', () => {
  it('are released oldest first, the last being the app version', () => {
    expect(migrations.map((m) => m.version)).toEqual(['1.0.0', '1.1.0']);
    expect([...migrations.map((m) => m.name)].sort()).toEqual(migrations.map((m) => m.name));
    expect(LATEST_SCHEMA_VERSION).toBe('1.1.0');
  });

  it('apply once and in order, and record each run', async () => {
    const database = await freshDatabase();
    await withClient(database, async (client) => {
      const first = await migrate(client);
      expect(first).toEqual(['1000000000000-InitialSchema', '1100000000000-Albums']);
      const second = await migrate(client);
      expect(second).toEqual([]);

      const { rows } = await client.query<{ name: string; version: string }>('SELECT name, version FROM migrations ORDER BY executed_at, name');
      expect(rows).toEqual([
        { name: '1000000000000-InitialSchema', version: '1.0.0' },
        { name: '1100000000000-Albums', version: '1.1.0' },
      ]);
      const history = (await client.query<{ value: Array<{ version: string; createdAt: string }> }>("SELECT value FROM system_metadata WHERE key = 'version-history'")).rows[0].value;
      expect(history.map((h) => h.version)).toEqual(['1.0.0', '1.1.0']);
      expect(Number.isNaN(Date.parse(history[0].createdAt))).toBe(false);

      for (const table of ['users', 'sessions', 'assets', 'albums', 'album_assets', 'system_metadata']) expect(await tableExists(client, table)).toBe(true);
      const state = await schemaState(client);
      expect(state).toMatchObject({ pending: [], unknown: [], version: '1.1.0' });
    });
  });

  it('run once when two processes start at the same moment', async () => {
    const database = await freshDatabase();
    const [a, b] = await Promise.all([withClient(database, (client) => migrate(client)), withClient(database, (client) => migrate(client))]);
    expect([...a, ...b].sort()).toEqual(['1000000000000-InitialSchema', '1100000000000-Albums']);
    await withClient(database, async (client) => {
      expect((await client.query('SELECT count(*)::int AS n FROM migrations')).rows[0].n).toBe(2);
    });
  });

  it("upTo '1.0.0' makes the old schema, and a later migrate() brings it to 1.1.0", async () => {
    const database = await freshDatabase();
    await withClient(database, async (client) => {
      expect(await migrate(client, { upTo: '1.0.0' })).toEqual(['1000000000000-InitialSchema']);
      expect(await tableExists(client, 'assets')).toBe(true);
      expect(await tableExists(client, 'albums')).toBe(false);
      expect(await columnExists(client, 'assets', 'is_favorite')).toBe(false);
      const old = await schemaState(client);
      expect(old.version).toBe('1.0.0');
      expect(old.pending.map((m) => m.name)).toEqual(['1100000000000-Albums']);

      // Data written by 1.0.0 survives the upgrade.
      await client.query("INSERT INTO users (email, name, is_admin) VALUES ('old@example.com', 'Old', true)");
      expect(await migrate(client)).toEqual(['1100000000000-Albums']);
      expect(await tableExists(client, 'albums')).toBe(true);
      expect(await columnExists(client, 'assets', 'is_favorite')).toBe(true);
      expect((await client.query('SELECT email FROM users')).rows).toEqual([{ email: 'old@example.com' }]);
      expect((await schemaState(client)).version).toBe('1.1.0');
    });
  });

  it('run each migration in its own transaction: a failing one leaves nothing half done', async () => {
    const database = await freshDatabase();
    const custom = [
      migrations[0],
      { name: '1050000000000-Broken', version: '1.0.5', sql: 'CREATE TABLE half_done (id int); SELECT no_such_function();' },
    ];
    await withClient(database, async (client) => {
      await expect(migrate(client, { migrations: custom })).rejects.toThrow(/Migration 1050000000000-Broken failed: .*no_such_function/);
      expect(await tableExists(client, 'users')).toBe(true);
      expect(await tableExists(client, 'half_done')).toBe(false);
      expect((await client.query('SELECT name FROM migrations')).rows).toEqual([{ name: '1000000000000-InitialSchema' }]);
      const history = (await client.query("SELECT value FROM system_metadata WHERE key = 'version-history'")).rows[0].value;
      expect(history.map((h: { version: string }) => h.version)).toEqual(['1.0.0']);
    });
  });

  it('refuse a database whose schema is newer than the app knows', async () => {
    const database = await freshDatabase();
    await withClient(database, async (client) => {
      await migrate(client);
      await client.query("INSERT INTO migrations (name, version) VALUES ('9900000000000-FromTheFuture', '9.9.0')");
      const state = await schemaState(client);
      expect(state.unknown).toEqual(['9900000000000-FromTheFuture']);
      const attempt = migrate(client);
      await expect(attempt).rejects.toBeInstanceOf(SchemaTooNewError);
      await expect(attempt).rejects.toThrow(/schema is newer than this version of Lifeboat knows \(unknown migrations: 9900000000000-FromTheFuture\)/);
    });

    // The app refuses to start on it, and leaves it untouched.
    const uploadLocation = mkdtempSync(join(tmpdir(), 'lifeboat-mig-'));
    try {
      const { host, port, user } = testCluster();
      const config = loadConfig({ UPLOAD_LOCATION: uploadLocation, DB_HOSTNAME: host, DB_PORT: String(port), DB_USERNAME: user, DB_DATABASE_NAME: database });
      await expect(Lifeboat.start(config, { log: () => undefined })).rejects.toBeInstanceOf(SchemaTooNewError);
    } finally {
      rmSync(uploadLocation, { recursive: true, force: true });
    }
    await withClient(database, async (client) => {
      expect((await client.query('SELECT count(*)::int AS n FROM migrations')).rows[0].n).toBe(3);
    });
  });

  it('a started app migrates an empty database to the latest schema', async () => {
    const database = await freshDatabase();
    const uploadLocation = mkdtempSync(join(tmpdir(), 'lifeboat-mig-'));
    const { host, port, user } = testCluster();
    const config = loadConfig({ UPLOAD_LOCATION: uploadLocation, DB_HOSTNAME: host, DB_PORT: String(port), DB_USERNAME: user, DB_DATABASE_NAME: database });
    const app = await Lifeboat.start(config, { log: () => undefined });
    try {
      expect(await app.migrate()).toEqual([]);
      const state = await app.db.withClient((client) => schemaState(client));
      expect(state.version).toBe(LATEST_SCHEMA_VERSION);
    } finally {
      await app.shutdown();
      rmSync(uploadLocation, { recursive: true, force: true });
    }
  });
});
