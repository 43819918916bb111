import pg from 'pg';

export interface ConnectionOptions {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  database: string;
}

export function createPool(connection: ConnectionOptions, max = 10): pg.Pool {
  const pool = new pg.Pool({ ...connection, max, idleTimeoutMillis: 10_000, application_name: 'lifeboat' });
  // An idle client losing its connection (server restart, terminated by a restore) must not crash the app.
  pool.on('error', () => undefined);
  return pool;
}

/** Environment for pg_dump/psql: only what they need, and the password never in the arguments. */
export function childEnv(connection: ConnectionOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C.UTF-8' };
  if (connection.password) env.PGPASSWORD = connection.password;
  return env;
}

/** Connection arguments for libpq tools, password excluded. */
export function connectionArgs(connection: ConnectionOptions, database = connection.database): string[] {
  return ['--host', connection.host, '--port', String(connection.port), '--username', connection.user, '--dbname', database];
}

/** Creates the instance database when the server has none yet (first start). */
export async function ensureDatabase(connection: ConnectionOptions): Promise<void> {
  const probe = new pg.Client(connection);
  try {
    await probe.connect();
    await probe.end();
    return;
  } catch (error) {
    await probe.end().catch(() => undefined);
    // 3D000: database does not exist. Anything else (auth, network) is the caller's to report.
    if ((error as { code?: string }).code !== '3D000') throw error;
  }
  const client = new pg.Client({ ...connection, database: 'postgres' });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [connection.database]);
    if (!rowCount) await client.query(`CREATE DATABASE ${pg.escapeIdentifier(connection.database)}`);
  } finally {
    await client.end();
  }
}
