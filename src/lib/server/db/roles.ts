import { createHash } from 'node:crypto';
import pg from 'pg';
import type { ConnectionOptions } from './connection';

/**
 * The database roles of the security model (README, "Security model"):
 * - the administrator (a superuser: the embedded cluster's "postgres", or DB_USERNAME when it is
 *   one) creates roles, databases and extensions, ends sessions and swaps databases, and runs no
 *   SQL that came from a dump;
 * - the owner role owns the instance database and everything in it; the web app, jobs, backups,
 *   migrations and the health check use it, so restored functions, triggers and views run with
 *   no more rights than the data they can already change;
 * - the restore role, made for one restore and dropped after it, is the login psql uses to run a
 *   dump into a staged database. Not SET ROLE: a dump could switch back.
 * SQL only; the rules of when each is used live with their callers.
 */

/** Server roles that open the server's files and programs to SQL. */
export const SERVER_ACCESS_ROLES = ['pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files'] as const;

/**
 * The start of names derived from the instance database's (staging databases, roles): identifiers
 * are at most 63 bytes, so a long name is cut, with a hash of the whole so that two names cut alike differ.
 */
export function derivedNameBase(database: string): string {
  if (Buffer.byteLength(database) <= 40) return database;
  const hash = createHash('sha256').update(database).digest('hex').slice(0, 8);
  return `${Buffer.from(database).subarray(0, 31).toString().replace(/\uFFFD+$/, '')}_${hash}`;
}

/** Role names of one instance database, fixed so that a crash's leftovers are found again. */
export function roleNames(database: string): { owner: string; restore: string } {
  const base = derivedNameBase(database);
  return { owner: `${base}_lifeboat_owner`, restore: `${base}_lifeboat_restore` };
}

export interface RoleRights {
  superuser: boolean;
  createRole: boolean;
  createDb: boolean;
  /** Member (directly or not) of a role in SERVER_ACCESS_ROLES. */
  serverAccess: boolean;
}

/** What a dump running as this role could do beyond its own database, in words; empty when nothing. */
export function privilegesOf(rights: RoleRights): string[] {
  const found: string[] = [];
  if (rights.superuser) found.push('superuser');
  if (rights.createRole) found.push('CREATEROLE');
  if (rights.serverAccess) found.push(`member of ${SERVER_ACCESS_ROLES.join('/')}`);
  return found;
}

/**
 * Options for administrator sessions: a search_path nobody else can write to, and writable even
 * when a dump gave its database default_transaction_read_only (connection options win over it).
 */
export const ADMIN_OPTIONS = '-c search_path=pg_catalog -c default_transaction_read_only=off';

export async function rightsOf(client: pg.ClientBase, role: string): Promise<RoleRights | null> {
  const { rows } = await client.query<RoleRights>(
    `SELECT r.rolsuper AS superuser, r.rolcreaterole AS "createRole", r.rolcreatedb AS "createDb",
            EXISTS (SELECT 1 FROM unnest($2::text[]) s(name) WHERE pg_has_role(r.oid, s.name, 'MEMBER')) AS "serverAccess"
     FROM pg_roles r WHERE r.rolname = $1`,
    [role, SERVER_ACCESS_ROLES],
  );
  return rows[0] ?? null;
}

/** The attributes every Lifeboat role gets, whatever a dump or an earlier version did to it. */
const UNPRIVILEGED = 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT';

/**
 * Creates the role or puts it back to an unprivileged login role with this password (none: the
 * embedded cluster trusts its private socket), no settings of its own and no memberships.
 */
export async function ensureUnprivilegedRole(admin: pg.ClientBase, role: string, password: string | undefined): Promise<void> {
  const id = admin.escapeIdentifier(role);
  const secret = password === undefined ? 'PASSWORD NULL' : `PASSWORD ${admin.escapeLiteral(password)}`;
  const { rowCount } = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
  await admin.query(`${rowCount ? 'ALTER' : 'CREATE'} ROLE ${id} WITH ${UNPRIVILEGED} ${secret}`);
  await admin.query(`ALTER ROLE ${id} RESET ALL`);
  const { rows } = await admin.query<{ database: string | null; granted: string | null }>(
    `SELECT d.datname AS database, NULL AS granted FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase
       WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1) AND s.setdatabase <> 0
     UNION ALL
     SELECT NULL, g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
       WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = $1)`,
    [role],
  );
  for (const row of rows) {
    if (row.database) await admin.query(`ALTER ROLE ${id} IN DATABASE ${admin.escapeIdentifier(row.database)} RESET ALL`);
    if (row.granted) await admin.query(`REVOKE ${admin.escapeIdentifier(row.granted)} FROM ${id}`);
  }
}

/** Drops a role that owns nothing any more (its objects were reassigned or its databases dropped). */
export async function dropRole(admin: pg.ClientBase, role: string): Promise<void> {
  await admin.query(`DROP ROLE IF EXISTS ${admin.escapeIdentifier(role)}`);
}

/**
 * Gives the owner role the database and, inside it, every object a superuser owns that is not
 * part of an extension: how installs from before the owner role (all owned by "postgres") are
 * moved over, and a no-op once they are. Run by the administrator, connected to that database.
 * (REASSIGN OWNED cannot take objects from the bootstrap superuser.)
 */
export async function moveToOwner(adminInDatabase: pg.ClientBase, database: string, owner: string): Promise<number> {
  const id = adminInDatabase.escapeIdentifier(owner);
  await adminInDatabase.query(`ALTER DATABASE ${adminInDatabase.escapeIdentifier(database)} OWNER TO ${id}`);
  const { rows } = await adminInDatabase.query<{ statement: string }>(
    `WITH supers AS (SELECT oid FROM pg_roles WHERE rolsuper),
     ours AS (SELECT oid FROM pg_namespace WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%'),
     members AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e')
     SELECT format('ALTER SCHEMA %I OWNER TO %s', n.nspname, $1::text) AS statement FROM pg_namespace n
       WHERE n.oid IN (SELECT oid FROM ours) AND n.nspowner IN (SELECT oid FROM supers)
         AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_namespace'::regclass AND m.objid = n.oid)
     UNION ALL
     SELECT format('ALTER %s %s OWNER TO %s',
                   CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                   c.oid::regclass, $1::text)
       FROM pg_class c
       WHERE c.relnamespace IN (SELECT oid FROM ours) AND c.relowner IN (SELECT oid FROM supers) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
         AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid)
         -- A sequence owned by a column follows its table.
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
     UNION ALL
     SELECT format('ALTER %s %s OWNER TO %s', CASE p.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END, p.oid::regprocedure, $1::text)
       FROM pg_proc p
       WHERE p.pronamespace IN (SELECT oid FROM ours) AND p.proowner IN (SELECT oid FROM supers)
         AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_proc'::regclass AND m.objid = p.oid)
     UNION ALL
     SELECT format('ALTER %s %s OWNER TO %s', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype, $1::text)
       FROM pg_type t
       WHERE t.typnamespace IN (SELECT oid FROM ours) AND t.typowner IN (SELECT oid FROM supers)
         AND (t.typtype IN ('d', 'e', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
         AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_type'::regclass AND m.objid = t.oid)`,
    [id],
  );
  for (const { statement } of rows) await adminInDatabase.query(statement);
  return rows.length;
}

/** What a database's owner can change about it with ALTER DATABASE, GRANT and COMMENT: a dump run as that owner could. */
export interface DatabaseProperties {
  connectionLimit: number;
  isTemplate: boolean;
  allowConnections: boolean;
  /** datacl as text (null: the default privileges). */
  acl: string[] | null;
  /** Database-wide settings ("name=value"), as pg_db_role_setting keeps them. */
  settings: string[] | null;
  comment: string | null;
}

export async function databaseProperties(admin: pg.ClientBase, database: string): Promise<DatabaseProperties> {
  const { rows } = await admin.query<DatabaseProperties>(
    `SELECT d.datconnlimit AS "connectionLimit", d.datistemplate AS "isTemplate", d.datallowconn AS "allowConnections",
            d.datacl::text[] AS acl, (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0) AS settings,
            shobj_description(d.oid, 'pg_database') AS comment
     FROM pg_database d WHERE d.datname = $1`,
    [database],
  );
  if (!rows[0]) throw new Error(`The database "${database}" does not exist`);
  return rows[0];
}

/**
 * Puts these properties back on the database, from a session outside it (inside it, settings the
 * dump gave it would apply to the administrator's own session).
 */
export async function setDatabaseProperties(admin: pg.ClientBase, database: string, properties: DatabaseProperties): Promise<void> {
  const db = admin.escapeIdentifier(database);
  await admin.query(
    `ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS ${properties.allowConnections} IS_TEMPLATE ${properties.isTemplate} CONNECTION LIMIT ${Number(properties.connectionLimit)}`,
  );
  await admin.query(`ALTER DATABASE ${db} RESET ALL`);
  for (const setting of properties.settings ?? []) {
    const at = setting.indexOf('=');
    await admin.query(`ALTER DATABASE ${db} SET ${admin.escapeIdentifier(setting.slice(0, at))} TO ${admin.escapeLiteral(setting.slice(at + 1))}`);
  }
  // There is no statement that sets a whole ACL back; the administrator is a superuser and may write the catalog.
  await admin.query('UPDATE pg_catalog.pg_database SET datacl = $1::aclitem[] WHERE datname = $2', [properties.acl, database]);
  await admin.query(`COMMENT ON DATABASE ${db} IS ${properties.comment === null ? 'NULL' : admin.escapeLiteral(properties.comment)}`);
}

/**
 * After a staged load: the new database gets the live one's properties (so nothing the dump did to
 * it as its owner stays), what the restore role made becomes the owner's, and so does the database.
 */
export async function handOver(admin: ConnectionOptions, database: string, from: string, to: string, properties: DatabaseProperties): Promise<void> {
  await withAdmin(admin, null, (client) => setDatabaseProperties(client, database, properties));
  await withAdmin(admin, database, async (client) => {
    await client.query(`REASSIGN OWNED BY ${client.escapeIdentifier(from)} TO ${client.escapeIdentifier(to)}`);
    // What is left are privileges granted to the restore role: they go with it.
    await client.query(`DROP OWNED BY ${client.escapeIdentifier(from)}`);
  });
  await withAdmin(admin, null, (client) => client.query(`ALTER DATABASE ${client.escapeIdentifier(database)} OWNER TO ${client.escapeIdentifier(to)}`));
}

/** A session as the administrator; its search_path holds only pg_catalog. */
export async function withAdmin<T>(admin: ConnectionOptions, database: string | null, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  let lastError: unknown;
  // "postgres" is there on almost every server; template1 always is, and takes connections.
  for (const name of database ? [database] : ['postgres', 'template1']) {
    const client = new pg.Client({ ...admin, database: name, application_name: 'lifeboat-admin', options: ADMIN_OPTIONS });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      lastError = error;
      await client.end().catch(() => undefined);
      continue;
    }
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  throw lastError;
}

/** True when this login works (pg_hba may refuse password logins the administrator's own login gets). */
export async function canLogIn(connection: ConnectionOptions): Promise<true | string> {
  const client = new pg.Client({ ...connection, application_name: 'lifeboat' });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return true;
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}
