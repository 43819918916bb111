import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type pg from 'pg';
import type { Lifeboat } from '../src/lib/server/app';
import { roleNames } from '../src/lib/server/db/roles';
import { ServiceError } from '../src/lib/server/errors';
import type { MaintenanceStatus } from '../src/lib/shared/types';
import { createDatabase, dropDatabase, testCluster, withClient } from './helpers/pg';
import { pgTool } from './restore-helpers';

/**
 * Helpers for the hostile-dump tests (restore-security.test.ts) and the honest odd dumps
 * (restore-honest.test.ts). Dumps are edited as bytes: a Latin-1 string holds one character per
 * byte, so an SJIS lead byte stays one byte and the dump's own UTF-8 text is kept byte for byte.
 */

/** Text for a byte-level edit: UTF-8 text as one Latin-1 character per byte. */
export function bytes(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** Rewrites a gzipped dump byte for byte (see bytes()) and stores it under a new name in the backups folder. */
export function editDumpBytes(app: Lifeboat, source: string, target: string, edit: (sql: string) => string): string {
  const folder = app.backups.backupsFolder;
  const sql = gunzipSync(readFileSync(join(folder, source))).toString('latin1');
  writeFileSync(join(folder, target), gzipSync(Buffer.from(edit(sql), 'latin1')));
  return target;
}

/** The dump's plain bytes. */
export function dumpBytes(app: Lifeboat, name: string): Buffer {
  return gunzipSync(readFileSync(join(app.backups.backupsFolder, name)));
}

/** The dump's plain text (UTF-8). */
export function dumpText(app: Lifeboat, name: string): string {
  return gunzipSync(readFileSync(join(app.backups.backupsFolder, name))).toString('utf8');
}

/** Removes pg_dump's own `\restrict KEY` / `\unrestrict KEY` lines (as an older pg_dump, or a hand-made file, has none). */
export function stripRestrict(sql: string): string {
  return sql.replace(/^\\(un)?restrict .*$/gm, '');
}

/** The key of the dump's own `\restrict` line. */
export function restrictKey(sql: string): string {
  const match = /^\\restrict (\S+)/m.exec(sql);
  if (!match) throw new Error('the dump has no \\restrict line');
  return match[1];
}

/** Inserts text right after pg_dump's header of SET lines (before the first DROP / CREATE). */
export function afterHeader(sql: string, text: string): string {
  const anchor = 'SET row_security = off;\n';
  const at = sql.indexOf(anchor);
  if (at < 0) throw new Error('no pg_dump header found');
  return `${sql.slice(0, at + anchor.length)}${text}\n${sql.slice(at + anchor.length)}`;
}

/**
 * A folder the database server's OS user (postgres) can write to, so that a COPY ... TO PROGRAM
 * or lo_export that was let through would succeed and leave its file: a test then sees it.
 */
export class MarkerFolder {
  readonly dir: string;
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'lifeboat-marker-'));
    chmodSync(this.dir, 0o777);
  }
  path(name = 'pwned'): string {
    return join(this.dir, name);
  }
  /** Every file any attack managed to make. */
  files(): string[] {
    return readdirSync(this.dir);
  }
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** What a hostile dump must not change on the server: roles, memberships, settings, configuration files, databases. */
export interface ServerState {
  roles: unknown[];
  members: unknown[];
  roleSettings: unknown[];
  fileSettings: unknown[];
  autoConf: string;
  databases: string[];
  instance: unknown;
  /** Extensions in the instance database. */
  extensions: string[];
}

/**
 * The server's state, but for the restore roles a restore makes and drops (restoreRoleLeft() checks
 * that one is gone: whether it was left behind is a separate question from whether a dump changed roles).
 */
export async function serverState(database: string): Promise<ServerState> {
  const state = await withClient('postgres', async (client) => {
    const roles = await client.query(
      `SELECT oid::int AS oid, rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
              rolconnlimit, rolvaliduntil::text, rolbypassrls, rolconfig
       FROM pg_roles WHERE rolname NOT LIKE '%\\_lifeboat\\_restore' ORDER BY rolname`,
    );
    const members = await client.query(
      `SELECT r.rolname AS role, m.rolname AS member, a.admin_option
       FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member ORDER BY 1, 2`,
    );
    const roleSettings = await client.query(
      `SELECT coalesce(d.datname, '*') AS database, coalesce(r.rolname, '*') AS role, s.setconfig
       FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1, 2`,
    );
    const fileSettings = await client.query('SELECT sourcefile, name, setting, applied, error FROM pg_file_settings ORDER BY seqno');
    const databases = await client.query<{ datname: string }>('SELECT datname FROM pg_database ORDER BY datname');
    const instance = await client.query(
      `SELECT pg_get_userbyid(datdba) AS owner, datconnlimit, datallowconn, datistemplate, datacl::text AS acl,
              shobj_description(oid, 'pg_database') AS comment
       FROM pg_database WHERE datname = $1`,
      [database],
    );
    return { roles: roles.rows, members: members.rows, roleSettings: roleSettings.rows, fileSettings: fileSettings.rows, databases: databases.rows.map((row) => row.datname), instance: instance.rows[0] ?? null };
  });
  const extensions = await withClient(database, async (client) => (await client.query<{ extname: string }>('SELECT extname FROM pg_extension ORDER BY 1')).rows.map((row) => row.extname));
  const autoConf = readFileSync(join(testCluster().dataDir, 'postgresql.auto.conf'), 'utf8');
  return { ...state, autoConf, extensions };
}

/** True when the role made for a staged restore of this database is still there. */
export async function restoreRoleLeft(database: string): Promise<boolean> {
  const { rows } = await withClient('postgres', (client) => client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [roleNames(database).restore]));
  return rows.length > 0;
}

/** rolcanlogin of the superuser the app administers with, and of the app's owner role. */
export async function loginRoles(database: string): Promise<Record<string, boolean>> {
  const { owner } = roleNames(database);
  const { user } = testCluster();
  return withClient('postgres', async (client) => {
    const { rows } = await client.query<{ rolname: string; rolcanlogin: boolean }>('SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1', [[owner, user]]);
    return Object.fromEntries(rows.map((row) => [row.rolname, row.rolcanlogin]));
  });
}

/** The outcome of a restore through the real path: refused before it began (ServiceError), or its final status. */
export type Outcome = { refused: ServiceError; status?: undefined } | { refused?: undefined; status: MaintenanceStatus };

export async function restoreOutcome(app: Lifeboat, name: string): Promise<Outcome> {
  try {
    const status = await app.restore.restore(await app.restore.validate(name), { by: 'the security test' });
    return { status };
  } catch (error) {
    if (error instanceof ServiceError) return { refused: error };
    throw error;
  }
}

/** The error and log of a restore as one text, for matching what was refused. */
export function outcomeText(outcome: Outcome): string {
  if (outcome.refused) return `refused ${outcome.refused.status}: ${outcome.refused.message}`;
  return [`task: ${outcome.status.task}`, `error: ${outcome.status.error}`, ...outcome.status.log].join('\n');
}

type Queryable = { query: (text: string, params?: unknown[]) => Promise<{ rows: any[] }> };

/**
 * md5 of every table's contents in the public schema (rows as text, sorted) and of every
 * function's source (prosrc): equal before a backup and after its restore means the data and the
 * code went through byte for byte.
 */
export async function dataDigest(db: Queryable): Promise<Record<string, string>> {
  const digest: Record<string, string> = {};
  const tables = await db.query(
    `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname COLLATE "C"`,
  );
  for (const { relname } of tables.rows as Array<{ relname: string }>) {
    const id = `public."${relname.replace(/"/g, '""')}"`;
    const { rows } = await db.query(`SELECT count(*)::int AS n, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE "C"), '')) AS md5 FROM ${id} t`);
    digest[`table ${relname}`] = `${rows[0].n} rows ${rows[0].md5}`;
  }
  const functions = await db.query(
    `SELECT p.oid::regprocedure::text AS name, md5(p.prosrc) AS md5 FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`,
  );
  for (const row of functions.rows) digest[`function ${row.name}`] = row.md5;
  return digest;
}

/**
 * md5 of the schema's other texts as PostgreSQL shows them: column defaults, constraints, views,
 * comments, column types. These are parsed again on load (a CHECK's ARRAY[...] comes back written
 * differently after any pg_dump/psql round trip), so they are compared with the same dump loaded
 * by plain psql (oracleLoad), not with the database before the backup.
 */
export async function schemaDigest(db: { withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> } | pg.ClientBase): Promise<Record<string, string>> {
  if ('withClient' in db) return db.withClient((client) => schemaDigest(client));
  // How these texts are written depends on the session: the same settings for every side.
  await db.query('BEGIN');
  try {
    await db.query('SET LOCAL standard_conforming_strings = on');
    await db.query(`SET LOCAL search_path = "$user", public`);
    return await schemaTexts(db);
  } finally {
    await db.query('COMMIT');
  }
}

async function schemaTexts(db: pg.ClientBase): Promise<Record<string, string>> {
  const digest: Record<string, string> = {};
  const texts = await db.query(
    `SELECT 'default ' || c.relname || '.' || a.attname AS key, pg_get_expr(d.adbin, d.adrelid) AS text
       FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
       WHERE c.relnamespace = 'public'::regnamespace
     UNION ALL
     SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace
     UNION ALL
     SELECT 'view ' || c.relname, pg_get_viewdef(c.oid) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('v', 'm')
     UNION ALL
     SELECT 'comment ' || c.relname || coalesce('.' || a.attname, ''), d.description
       FROM pg_description d JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0
       WHERE c.relnamespace = 'public'::regnamespace
     UNION ALL
     SELECT 'column ' || c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod)
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v') AND a.attnum > 0 AND NOT a.attisdropped`,
  );
  // The text itself when short (a diff then shows what changed), else its md5.
  for (const row of texts.rows) digest[row.key] = row.text.length <= 120 ? row.text : createHash('md5').update(row.text).digest('hex');
  return digest;
}

/**
 * The dump loaded the plain way: psql as the superuser, no filter, into a new database. Its
 * schemaDigest is what a faithful restore gives. Errors (a GRANT to a role that is gone) are
 * left to psql, as a plain restore would.
 */
export async function oracleSchema(sql: Buffer): Promise<Record<string, string>> {
  const database = await createDatabase('oracle');
  try {
    const { host, port, user } = testCluster();
    execFileSync(pgTool('psql'), ['-X', '-q', '-h', host, '-p', String(port), '-U', user, '-d', database, '-f', '-'], { input: sql, stdio: ['pipe', 'ignore', 'ignore'], maxBuffer: 1024 ** 3 });
    return await withClient(database, (client) => schemaDigest(client));
  } finally {
    await dropDatabase(database);
  }
}
