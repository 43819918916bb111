import pg from 'pg';
import type { Config } from '../config';
import { createPool, ensureDatabase, type ConnectionOptions } from './connection';
import { EmbeddedCluster } from './embedded-cluster';

/**
 * The instance database: its connection settings, the app's pool, and (by default) the
 * embedded cluster it runs in. A restore closes the pool and the next query opens a new one.
 */
export class Database {
  private currentPool: pg.Pool | null = null;

  constructor(
    readonly connection: ConnectionOptions,
    readonly cluster: EmbeddedCluster | null = null,
  ) {}

  static async open(config: Config, options: { fsync?: boolean } = {}): Promise<Database> {
    const db = config.database;
    if (db.kind === 'external') {
      const connection = { host: db.host, port: db.port, user: db.user, password: db.password, database: db.database };
      await ensureDatabase(connection).catch((error) => {
        throw new Error(`Cannot connect to the database server at ${db.host}:${db.port} as "${db.user}": ${error.message}. Check DB_URL or DB_HOSTNAME/DB_PORT/DB_USERNAME/DB_PASSWORD.`);
      });
      return new Database(connection);
    }
    const cluster = new EmbeddedCluster({ dataDir: db.dataLocation, pgBinDir: config.pgBinDir, fsync: options.fsync });
    await cluster.start();
    const connection = cluster.connection(db.database);
    await ensureDatabase(connection);
    return new Database(connection, cluster);
  }

  get pool(): pg.Pool {
    this.currentPool ??= createPool(this.connection);
    return this.currentPool;
  }

  query<R extends pg.QueryResultRow = any>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    return this.pool.query<R>(text, params as any[]);
  }

  async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      return await fn(client);
    } finally {
      client.release();
    }
  }

  /** A connection outside the pool, e.g. to the maintenance database "postgres". */
  async connect(database = this.connection.database): Promise<pg.Client> {
    const client = new pg.Client({ ...this.connection, database, application_name: 'lifeboat' });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  /** "15.18" from "15.18 (Debian 15.18-0+deb12u1)". */
  async serverVersion(): Promise<string> {
    const client = await this.connect();
    try {
      const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
      return rows[0].server_version.split(' ')[0];
    } finally {
      await client.end();
    }
  }

  /** Closes the app's own connections (before a restore replaces the database). */
  async closePool(): Promise<void> {
    const pool = this.currentPool;
    this.currentPool = null;
    await pool?.end().catch(() => undefined);
  }

  async shutdown(): Promise<void> {
    await this.closePool();
    await this.cluster?.stop();
  }
}
