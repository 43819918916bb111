import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { Lifeboat } from '../../src/lib/server/app';
import { loadConfig } from '../../src/lib/server/config';
import type { ConnectionOptions } from '../../src/lib/server/db/connection';
import { roleNames } from '../../src/lib/server/db/roles';

export function testCluster() {
  return inject('pg');
}

export function connectionFor(database: string): ConnectionOptions {
  const { host, port, user } = testCluster();
  return { host, port, user, password: undefined, database };
}

/** A fresh, empty database on the test cluster. */
export async function createDatabase(prefix = 't'): Promise<string> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client(connectionFor('postgres'));
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  return name;
}

export async function dropDatabase(name: string): Promise<void> {
  const client = new pg.Client(connectionFor('postgres'));
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await client.end();
}

export async function withClient<T>(database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(connectionFor(database));
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface TestInstance {
  app: Lifeboat;
  database: string;
  uploadLocation: string;
  env: Record<string, string>;
  close(): Promise<void>;
}

/** A whole app on its own database and temporary UPLOAD_LOCATION, as the web server and CLI start it. */
export async function startInstance(options: { database?: string; env?: Record<string, string>; log?: (line: string) => void } = {}): Promise<TestInstance> {
  const database = options.database ?? (await createDatabase('app'));
  const uploadLocation = mkdtempSync(join(tmpdir(), 'lifeboat-upload-'));
  const { host, port, user } = testCluster();
  const env = {
    UPLOAD_LOCATION: uploadLocation,
    DB_HOSTNAME: host,
    DB_PORT: String(port),
    DB_USERNAME: user,
    DB_DATABASE_NAME: database,
    ...options.env,
  };
  const app = await Lifeboat.start(loadConfig(env), { log: options.log ?? (() => undefined) });
  return {
    app,
    database,
    uploadLocation,
    env,
    async close() {
      await app.shutdown();
      await dropDatabase(database);
      // The roles Lifeboat made for this database (see db/roles.ts): the cluster is shared by the whole run.
      const { owner, restore } = roleNames(database);
      // A staged restore's replaced database may still be there (it is dropped in the background).
      const { rows } = await withClient('postgres', (client) => client.query('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${database}__lifeboat`]));
      for (const row of rows) await dropDatabase(`"${row.datname}"`);
      await withClient('postgres', (client) => client.query(`DROP ROLE IF EXISTS ${owner}; DROP ROLE IF EXISTS ${restore}`));
      rmSync(uploadLocation, { recursive: true, force: true });
    },
  };
}
