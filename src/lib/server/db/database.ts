import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { Config } from '../config';
import { createPool, ensureDatabase, type ConnectionOptions } from './connection';
import { EmbeddedCluster } from './embedded-cluster';
import { canLogIn, ensureUnprivilegedRole, moveToOwner, privilegesOf, rightsOf, roleNames, withAdmin } from './roles';

/** Who the app is on the database server (see roles.ts and the README's "Security model"). */
export interface DatabaseAccess {
  /** Rights of the app's own role beyond its database, in words: empty when it is unprivileged. */
  appPrivileges: string[];
  /** Why the app could not run unprivileged, and what to do: shown at start and in the admin area. */
  warning: string | null;
}

/**
 * The instance database: the app's connection (the owner role), the administrator's (a
 * superuser, when there is one), the app's pool, and (by default) the embedded cluster it runs
 * in. A restore closes the pool and the next query opens a new one.
 */
export class Database {
  private currentPool: pg.Pool | null = null;

  constructor(
    /** The app's own login: the database's owner, no superuser where that could be arranged. */
    readonly connection: ConnectionOptions,
    /** A superuser login for administration only (roles, databases, extensions, sessions); null when there is none. */
    readonly admin: ConnectionOptions | null = null,
    readonly cluster: EmbeddedCluster | null = null,
    readonly access: DatabaseAccess = { appPrivileges: [], warning: null },
  ) {}

  static async open(config: Config, options: { fsync?: boolean } = {}): Promise<Database> {
    const db = config.database;
    const stateDir = join(config.uploadLocation, '.lifeboat');
    if (db.kind === 'external') {
      const given = { host: db.host, port: db.port, user: db.user, password: db.password, database: db.database };
      await ensureDatabase(given).catch((error) => {
        throw new Error(`Cannot connect to the database server at ${db.host}:${db.port} as "${db.user}": ${error.message}. Check DB_URL or DB_HOSTNAME/DB_PORT/DB_USERNAME/DB_PASSWORD.`);
      });
      return openExternal(given, stateDir);
    }
    const cluster = new EmbeddedCluster({ dataDir: db.dataLocation, pgBinDir: config.pgBinDir, fsync: options.fsync });
    await cluster.start();
    const admin = cluster.connection(db.database);
    await ensureDatabase(admin);
    // The cluster trusts its private socket: the owner role needs no password.
    const owner = roleNames(db.database).owner;
    await provisionOwner(admin, owner, undefined);
    return new Database({ ...admin, user: owner }, admin, cluster);
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

  /** A connection outside the pool, as the app's role. */
  async connect(database = this.connection.database): Promise<pg.Client> {
    const client = new pg.Client({ ...this.connection, database, application_name: 'lifeboat' });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  /** "15.18" from "15.18 (Debian 15.18-0+deb12u1)". */
  /**
   * Asked once and remembered until the pool is closed (around a restore): each ask is a
   * connection of its own, which a database with a small CONNECTION LIMIT may not have to spare.
   */
  async serverVersion(): Promise<string> {
    this.version ??= (async () => {
      const client = await this.connect();
      try {
        const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
        return rows[0].server_version.split(' ')[0];
      } finally {
        await client.end();
      }
    })().catch((error) => {
      this.version = null;
      throw error;
    });
    return this.version;
  }

  private version: Promise<string> | null = null;

  /** Closes the app's own connections (before a restore replaces the database). */
  async closePool(): Promise<void> {
    this.version = null;
    const pool = this.currentPool;
    this.currentPool = null;
    await pool?.end().catch(() => undefined);
  }

  async shutdown(): Promise<void> {
    await this.closePool();
    await this.cluster?.stop();
  }
}

/** The owner role made (or put back) unprivileged, given the database and what a superuser owns in it. */
async function provisionOwner(admin: ConnectionOptions, owner: string, password: string | undefined): Promise<void> {
  await withAdmin(admin, null, (client) => ensureUnprivilegedRole(client, owner, password));
  await withAdmin(admin, admin.database, (client) => moveToOwner(client, admin.database, owner));
}

/**
 * An external server. An unprivileged DB_USERNAME is used as it is. A superuser becomes the
 * administrator, and the app runs as an owner role of its own (password kept in the state
 * folder) where the server lets that role log in; else the app stays a superuser, with a warning.
 */
async function openExternal(given: ConnectionOptions, stateDir: string): Promise<Database> {
  const facts = await withAdmin(given, given.database, async (client) => {
    const rights = await rightsOf(client, given.user);
    const { rows } = await client.query<{ owner: string; ownerIsSuper: boolean }>(
      'SELECT r.rolname AS owner, r.rolsuper AS "ownerIsSuper" FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = current_database()',
    );
    return { rights: rights!, ...rows[0] };
  });
  if (!facts.rights.superuser) {
    const privileges = privilegesOf(facts.rights);
    const warning = privileges.length
      ? `The database role "${given.user}" is ${privileges.join(', ')}: code in a restored dump could use that. Give Lifeboat a role without these rights that owns the database.`
      : null;
    return new Database(given, null, null, { appPrivileges: privileges, warning });
  }
  const owner = roleNames(given.database).owner;
  const superuserApp = (why: string) =>
    new Database(given, given, null, {
      appPrivileges: ['superuser'],
      warning: `Lifeboat runs as the superuser "${given.user}" (${why}): code in a restored dump would later run as a superuser. ${ownerFix(owner, given.user)}`,
    });
  if (!facts.ownerIsSuper && facts.owner !== owner) return superuserApp(`the database belongs to "${facts.owner}", whose password Lifeboat does not have`);
  const password = ownerPassword(stateDir);
  await provisionOwner(given, owner, password);
  const connection = { ...given, user: owner, password };
  const login = await canLogIn(connection);
  if (login !== true) return superuserApp(`the owner role "${owner}" it made cannot log in: ${login}`);
  return new Database(connection, given, null);
}

function ownerFix(owner: string, superuser: string): string {
  return `Allow password logins for the role "${owner}" in pg_hba.conf, or set DB_USERNAME to a role that owns the database and is not a superuser (then restores need that role, or RESTORE_ALLOW_PRIVILEGED=true with "${superuser}").`;
}

/** The owner role's password: made once, kept readable only by the server's user. */
function ownerPassword(stateDir: string): string {
  const file = join(stateDir, 'db-owner-password');
  if (existsSync(file)) {
    const stored = readFileSync(file, 'utf8').trim();
    if (stored) return stored;
  }
  mkdirSync(stateDir, { recursive: true });
  const password = randomBytes(24).toString('base64url');
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return password;
}
