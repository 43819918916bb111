import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { roleNames } from '../src/lib/server/db/roles';
import { ServiceError } from '../src/lib/server/errors';
import { startInstance, testCluster, withClient, type TestInstance } from './helpers/pg';
import { beforeEnd, changeData, pgTool, seed, snapshot } from './restore-helpers';
import {
  afterHeader,
  editDumpBytes,
  loginRoles,
  MarkerFolder,
  outcomeText,
  restoreOutcome,
  restoreRoleLeft,
  restrictKey,
  serverState,
  stripRestrict,
  type Outcome,
} from './security-helpers';

/**
 * Hostile dumps (README, "Security model"; issue 13). Each is a real backup of a seeded instance,
 * edited, restored through the real path. Whatever the restore's outcome: no file appears in the
 * marker folder (which the database server's user may write to), no role, membership, setting or
 * configuration file changed, both logins keep LOGIN, and the app does not run as a superuser.
 * A restore that fails leaves the data as it was and names what was refused; one that succeeds
 * (the filter left the statement out) brought back the backup's data.
 */

const instances: TestInstance[] = [];
const markers: MarkerFolder[] = [];
afterEach(async () => {
  for (const instance of instances.splice(0)) {
    // A staging database a hostile dump made a template (a finding, when a test leaves one) cannot be dropped as it is.
    await withClient('postgres', async (client) => {
      const { rows } = await client.query('SELECT datname FROM pg_database WHERE datistemplate AND starts_with(datname, $1)', [instance.database]);
      for (const row of rows) await client.query(`ALTER DATABASE ${client.escapeIdentifier(row.datname)} IS_TEMPLATE false`);
    });
    await instance.close();
  }
  for (const marker of markers.splice(0)) marker.remove();
  // Only there if an attack got through (a test then failed): the next test starts clean.
  await withClient('postgres', async (client) => {
    await client.query('DROP ROLE IF EXISTS evil');
    await client.query('ALTER SYSTEM RESET archive_command');
  });
});

interface Ctx {
  instance: TestInstance;
  app: TestInstance['app'];
  database: string;
  owner: string;
  restoreRole: string;
  backup: string;
  /** The data of the backup. */
  before: Awaited<ReturnType<typeof snapshot>>;
  /** The data just before the restore (changed since the backup). */
  current: Awaited<ReturnType<typeof snapshot>>;
  marker: MarkerFolder;
  inPlace: boolean;
}

/** A seeded instance, its backup, then changed data; in place: a database COMMENT (a new database would not have it) forces the restore in place. */
async function prepared(options: { inPlace?: boolean } = {}): Promise<Ctx> {
  const instance = await startInstance();
  instances.push(instance);
  const { app, database } = instance;
  await seed(app.db);
  const { filename: backup } = await app.backups.createBackup();
  const before = await snapshot(app.db);
  await changeData(app.db);
  const current = await snapshot(app.db);
  if (options.inPlace) await withClient('postgres', (client) => client.query(`COMMENT ON DATABASE ${client.escapeIdentifier(database)} IS 'forces an in-place restore'`));
  const marker = new MarkerFolder();
  markers.push(marker);
  const { owner, restore } = roleNames(database);
  return { instance, app, database, owner, restoreRole: restore, backup, before, current, marker, inPlace: !!options.inPlace };
}

// The filter's log line when it left out role statements (CREATE/ALTER ROLE, GRANT role TO role).
const ROLE_SKIPPED = /Left out of the dump[^\n]*\b[1-9]\d* role\b/;
// What psql says in restricted mode (or the filter, if it refuses a meta-command itself).
const META = /backslash commands are restricted|meta-command/i;
/** The restore filter's refusal of a settings change it cannot follow as psql does (set_config, pg_settings). */
const UNFOLLOWED = /in a form Lifeboat does not follow/;
const PROGRAM = /must be superuser or have privileges of the pg_execute_server_program role/;

interface Attack {
  name: string;
  /** The hostile text (bytes as Latin-1 characters, see bytes()); `dump` is the original dump text. */
  sql: (ctx: Ctx, dump: string) => string;
  /** What the error or log must name when the restore fails. */
  refused: RegExp;
  /** The filter may leave the statement out (then the restore may succeed). */
  mayRestore?: boolean;
  /** When the restore succeeded: what its log must count as left out. */
  skipped?: RegExp;
  /** Where it goes: before the dump's closing comment (default), after its header, or after its last line (the \unrestrict). */
  where?: 'end' | 'top' | 'last';
  /** Also run in place (the representative subset). */
  inPlace?: boolean;
  /** Further checks, whatever the outcome. */
  afterwards?: (ctx: Ctx, outcome: Outcome) => Promise<void>;
}

const doExecute = (statement: string) => `DO $$ BEGIN EXECUTE ${statement}; END $$;`;
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

/** What the app's own connection sees: settings a dump could have given its role or database. */
async function appSessionIsPlain(ctx: Ctx): Promise<void> {
  const { rows } = await ctx.app.db.query(
    "SELECT current_user::text AS user, current_setting('default_transaction_read_only') AS ro, current_setting('statement_timeout') AS timeout, current_setting('search_path') AS path, current_setting('work_mem') AS work_mem",
  );
  expect(rows[0]).toEqual({ user: ctx.owner, ro: 'off', timeout: '0', path: '"$user", public', work_mem: '4MB' });
}

const ATTACKS: Attack[] = [
  // psql meta-commands: psql is in restricted mode whatever the dump says.
  { name: '\\! shell', sql: (ctx) => `\\! touch ${ctx.marker.path()}`, refused: META, inPlace: true },
  // Refused before psql could run it (the dump must end with its end line), and psql's restricted mode refuses it too.
  { name: '\\! shell after the dump\'s last line', sql: (ctx) => `\\! touch ${ctx.marker.path()}`, refused: /backslash commands are restricted|meta-command|does not end with the "PostgreSQL database dump complete" line/i, where: 'last' },
  { name: '\\! shell near the top', sql: (ctx) => `\\! touch ${ctx.marker.path()}`, refused: META, where: 'top' },
  { name: '\\unrestrict with the dump\'s own key, then \\!', sql: (ctx, dump) => `\\unrestrict ${restrictKey(dump)}\n\\! touch ${ctx.marker.path()}`, refused: /wrong key|backslash commands are restricted|meta-command/i },
  { name: 'its own \\restrict / \\unrestrict pair, then \\!', sql: (ctx) => `\\restrict abc\nSELECT 1;\n\\unrestrict abc\n\\! touch ${ctx.marker.path()}`, refused: /wrong key|backslash commands are restricted|meta-command/i },
  { name: '\\copy ... TO PROGRAM', sql: (ctx) => `\\copy (SELECT 1) TO PROGRAM 'touch ${ctx.marker.path()}'`, refused: META },
  { name: '\\o |program', sql: (ctx) => `\\o |touch ${ctx.marker.path()}\nSELECT 1;`, refused: META },
  { name: '\\g |program', sql: (ctx) => `SELECT 1 \\g |touch ${ctx.marker.path()}`, refused: META },
  { name: '\\! after \\\\ on an \\echo line', sql: (ctx) => `\\echo x \\\\ \\! touch ${ctx.marker.path()}`, refused: META },
  { name: '\\! in the middle of a line', sql: (ctx) => `SELECT 1 \\! touch ${ctx.marker.path()}`, refused: META },
  { name: '\\! after an identifier holding $q$', sql: (ctx) => `SELECT 1 AS x$q$\n\\! touch ${ctx.marker.path()}\n-- $q$;`, refused: META },
  {
    name: '\\! hidden by standard_conforming_strings = off (SET)',
    sql: (ctx) => `SET standard_conforming_strings = off;\nSELECT '\\' AS a, '\n\\! touch ${ctx.marker.path()}\n' AS b;`,
    refused: META,
  },
  {
    name: '\\! hidden by standard_conforming_strings = off (set_config)',
    sql: (ctx) => `SELECT pg_catalog.set_config('standard_conforming_strings', 'off', false);\nSELECT '\\' AS a, '\n\\! touch ${ctx.marker.path()}\n' AS b;`,
    refused: UNFOLLOWED,
  },
  {
    name: '\\connect to another database',
    sql: () => `\\connect postgres\nCREATE TABLE public.lifeboat_escaped (a int);`,
    refused: META,
    mayRestore: true,
    afterwards: async () => {
      const { rows } = await withClient('postgres', (client) => client.query("SELECT to_regclass('public.lifeboat_escaped')::text AS found"));
      expect(rows[0].found).toBeNull();
    },
  },
  {
    name: '\\c to another database',
    sql: () => `\\c postgres\nCREATE TABLE public.lifeboat_escaped (a int);`,
    refused: META,
    mayRestore: true,
    afterwards: async () => {
      const { rows } = await withClient('postgres', (client) => client.query("SELECT to_regclass('public.lifeboat_escaped')::text AS found"));
      expect(rows[0].found).toBeNull();
    },
  },

  // SQL: PostgreSQL refuses what the role may not do, however the statement is built.
  { name: 'DO ... EXECUTE COPY TO PROGRAM', sql: (ctx) => `DO $$ BEGIN EXECUTE 'CO' || 'PY (SELECT 1) TO PRO' || 'GRAM ''touch ${ctx.marker.path()}'''; END $$;`, refused: PROGRAM, inPlace: true },
  { name: 'COPY TO PROGRAM', sql: (ctx) => `COPY (SELECT 1) TO PROGRAM 'touch ${ctx.marker.path()}';`, refused: PROGRAM },
  { name: 'COPY FROM PROGRAM', sql: (ctx) => `COPY public.users (email) FROM PROGRAM 'touch ${ctx.marker.path()}; echo evil@example.com';`, refused: PROGRAM, inPlace: true },
  { name: 'DO ... COPY FROM PROGRAM', sql: (ctx) => doExecute(`'COPY public.users (email) FROM PRO' || 'GRAM ''touch ${ctx.marker.path()}; echo evil@example.com'''`), refused: PROGRAM },
  { name: 'COPY TO a server file', sql: (ctx) => `COPY (SELECT 1) TO '${ctx.marker.path()}';`, refused: /pg_write_server_files/ },
  { name: 'lo_export', sql: (ctx) => `SELECT pg_catalog.lo_export(pg_catalog.lo_from_bytea(0, 'x'), '${ctx.marker.path()}');`, refused: /permission denied for function lo_export/, inPlace: true },
  { name: 'pg_read_file', sql: () => `CREATE TABLE public.stolen AS SELECT pg_catalog.pg_read_file('/etc/passwd') AS content;`, refused: /permission denied for function pg_read_file/, inPlace: true },
  { name: 'DO ... CREATE ROLE SUPERUSER', sql: () => doExecute(`'CREATE ROLE evil SUPERUSER LOGIN PASSWORD ''x'''`), refused: /must be superuser to create superusers|permission denied to create role/, inPlace: true },
  { name: 'CREATE ROLE SUPERUSER', sql: () => `CREATE ROLE evil SUPERUSER LOGIN PASSWORD 'x';`, refused: /must be superuser to create superusers|permission denied to create role/, mayRestore: true, skipped: ROLE_SKIPPED },
  {
    name: 'RESET ROLE; SET SESSION AUTHORIZATION postgres',
    sql: () => `RESET ROLE;\nSET SESSION AUTHORIZATION postgres;\nCREATE TABLE public.who_am_i AS SELECT current_user::text AS name, session_user::text AS login;`,
    refused: /permission denied to set session authorization/,
    mayRestore: true,
    inPlace: true,
    afterwards: async (ctx, outcome) => {
      if (outcome.status?.task !== 'done') return;
      // Left out by the filter: what followed ran as the dump's own login.
      const { rows } = await ctx.app.db.query('SELECT name, login FROM public.who_am_i');
      const expected = ctx.inPlace ? ctx.owner : ctx.restoreRole;
      expect(rows).toEqual([{ name: expected, login: expected }]);
    },
  },
  { name: "set_config('session_authorization', 'postgres')", sql: () => `SELECT pg_catalog.set_config('session_authorization', 'postgres', false);`, refused: /permission denied to set session authorization/ },
  { name: 'DO ... SET SESSION AUTHORIZATION', sql: () => doExecute(`'SET SESSION AUTHORIZATION postgres'`), refused: /permission denied to set session authorization/ },
  { name: 'SET ROLE postgres', sql: () => `SET ROLE postgres;`, refused: /permission denied to set role "postgres"/, mayRestore: true },
  { name: 'ALTER ROLE U&"\\0070ostgres" NOLOGIN', sql: () => `ALTER ROLE U&"\\0070ostgres" NOLOGIN;`, refused: /must be superuser to alter superuser roles/, mayRestore: true, skipped: ROLE_SKIPPED, inPlace: true },
  { name: 'DO ... ALTER ROLE U&"\\0070ostgres" NOLOGIN', sql: () => doExecute(`'ALTER ROLE U&"\\0070ostgres" NOLOGIN'`), refused: /must be superuser to alter superuser roles/, inPlace: true },
  { name: 'ALTER ROLE <owner role> NOLOGIN', sql: (ctx) => `ALTER ROLE ${ctx.owner} NOLOGIN;`, refused: /permission denied/, mayRestore: true, skipped: ROLE_SKIPPED, inPlace: true },
  { name: 'DO ... ALTER ROLE <owner role> NOLOGIN', sql: (ctx) => doExecute(literal(`ALTER ROLE ${ctx.owner} NOLOGIN`)), refused: /permission denied/, inPlace: true },
  { name: 'DO ... ALTER ROLE <owner role> SUPERUSER', sql: (ctx) => doExecute(literal(`ALTER ROLE ${ctx.owner} SUPERUSER CREATEROLE`)), refused: /must be superuser|permission denied/ },
  { name: 'DO ... ALTER SYSTEM', sql: (ctx) => doExecute(literal(`ALTER SYSTEM SET archive_command = 'touch ${ctx.marker.path()}'`)), refused: /ALTER SYSTEM cannot (be executed from a function|run inside a transaction block)|must be superuser/, inPlace: true },
  { name: 'ALTER SYSTEM', sql: (ctx) => `ALTER SYSTEM SET archive_command = 'touch ${ctx.marker.path()}';`, refused: /ALTER SYSTEM cannot run inside a transaction block|must be superuser|permission denied to set parameter/, mayRestore: true, inPlace: true },
  { name: 'DO ... GRANT pg_execute_server_program', sql: () => doExecute(`'GRANT pg_execute_server_program TO CURRENT_USER'`), refused: /must have admin option on role "pg_execute_server_program"|permission denied/, inPlace: true },
  { name: 'GRANT pg_execute_server_program', sql: () => `GRANT pg_execute_server_program, pg_read_server_files TO CURRENT_USER;`, refused: /must have admin option on role|permission denied/, mayRestore: true, skipped: ROLE_SKIPPED },
  { name: 'a C function calling system()', sql: () => `CREATE FUNCTION public.lifeboat_system(cstring) RETURNS integer LANGUAGE c AS '/lib/x86_64-linux-gnu/libc.so.6', 'system';`, refused: /permission denied for language c/ },
  {
    name: 'an event trigger',
    sql: (ctx) =>
      `CREATE FUNCTION public.lifeboat_et() RETURNS event_trigger LANGUAGE plpgsql AS $f$ BEGIN COPY (SELECT 1) TO PROGRAM 'touch ${ctx.marker.path()}'; END $f$;\n` +
      `CREATE EVENT TRIGGER lifeboat_et ON ddl_command_start EXECUTE FUNCTION public.lifeboat_et();`,
    refused: /permission denied to create event trigger|must be superuser/,
  },
  { name: 'LOAD a library', sql: () => `LOAD '/tmp/lifeboat-evil.so';`, refused: /access to library "\/tmp\/lifeboat-evil.so" is not allowed|permission denied/ },
  { name: 'DO ... CREATE EXTENSION dblink', sql: () => doExecute(`'CREATE EXTENSION dblink SCHEMA public'`), refused: /permission denied to create extension "dblink"/ },
  {
    name: 'CREATE EXTENSION dblink deep in the dump, then dblink_exec',
    sql: () => `CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA public;\nSELECT public.dblink_exec('dbname=postgres user=postgres', 'ALTER ROLE postgres NOLOGIN');`,
    refused: /dblink/,
  },
  {
    name: 'DO ... ALTER DATABASE SET default_transaction_read_only, search_path',
    sql: () =>
      `DO $$ BEGIN\n` +
      `  EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database());\n` +
      `  EXECUTE format('ALTER DATABASE %I SET search_path = evil', current_database());\n` +
      `END $$;`,
    // Staged, the settings also reach the administrator's session that hands the database over: that fails, cleanly.
    refused: /permission denied|must be|cannot execute REASSIGN OWNED in a read-only transaction/,
    mayRestore: true,
    inPlace: true,
    afterwards: appSessionIsPlain,
  },
  {
    name: 'DO ... ALTER DATABASE IS_TEMPLATE true',
    sql: () => `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I IS_TEMPLATE true', current_database()); END $$;`,
    refused: /permission denied|must be/,
    mayRestore: true,
    inPlace: true,
  },
  {
    name: 'DO ... GRANT CREATE ON DATABASE TO PUBLIC, REVOKE CONNECT',
    sql: () =>
      `DO $$ BEGIN\n` +
      `  EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());\n` +
      `  EXECUTE format('GRANT CREATE ON DATABASE %I TO PUBLIC', current_database());\n` +
      `END $$;`,
    refused: /permission denied|must be/,
    mayRestore: true,
    inPlace: true,
  },
  {
    name: 'DO ... CONNECTION LIMIT 0 on the database',
    sql: () => `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I CONNECTION LIMIT 0', current_database()); END $$;`,
    refused: /permission denied|must be/,
    mayRestore: true,
    inPlace: true,
    afterwards: appSessionIsPlain,
  },
  {
    name: 'DO ... the login role\'s own settings and password',
    sql: () =>
      `DO $$ BEGIN\n` +
      `  EXECUTE 'ALTER ROLE CURRENT_USER SET statement_timeout = 1';\n` +
      `  EXECUTE format('ALTER ROLE CURRENT_USER IN DATABASE %I SET work_mem = ''64kB''', current_database());\n` +
      `  EXECUTE 'ALTER ROLE CURRENT_USER PASSWORD ''hijacked''';\n` +
      `END $$;`,
    refused: /permission denied|must be/,
    mayRestore: true,
    inPlace: true,
    afterwards: appSessionIsPlain,
  },
  // From a second review: ending the app's transaction, trusted extensions made by a DO block.
  {
    name: 'ROLLBACK; then rows, a trigger and a database setting outside the transaction, then an error',
    sql: () =>
      `ROLLBACK;\nINSERT INTO public.users (email, name, password, is_admin) VALUES ('attacker@evil.example', 'Evil', 'x', true);\n` +
      `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET work_mem = ''77kB''', current_database()); END $$;\nSELECT 1/0;`,
    refused: /division by zero/,
    inPlace: true,
    afterwards: async (ctx) => {
      const { rows } = await ctx.app.db.query("SELECT count(*)::int AS n FROM users WHERE email = 'attacker@evil.example'");
      expect(rows[0].n).toBe(0);
      await appSessionIsPlain(ctx);
    },
  },
  {
    name: 'COMMIT; then REVOKE CONNECT from everyone, then an error',
    sql: () =>
      `COMMIT;\nDO $$ BEGIN\n  EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());\n` +
      `  EXECUTE format('REVOKE ALL ON DATABASE %I FROM CURRENT_USER', current_database());\nEND $$;\nSELECT 1/0;`,
    refused: /division by zero/,
    inPlace: true,
    afterwards: appSessionIsPlain,
  },
  { name: 'PREPARE TRANSACTION', sql: () => `PREPARE TRANSACTION 'lifeboat_evil';\nSELECT 1/0;`, refused: /division by zero/, inPlace: true },
  {
    name: 'DO ... CREATE EXTENSION of trusted extensions outside the allow-list',
    sql: () => doExecute(`'CREATE EXTENSION hstore SCHEMA public'`),
    refused: /created the PostgreSQL extension "hstore", which Lifeboat does not allow/,
    inPlace: true,
  },
];

// Lead bytes that take a following backslash or quote into one character for psql in that client encoding.
const ENCODINGS: Array<[encoding: string, lead: number, inPlace: boolean]> = [
  ['SJIS', 0x95, true],
  ['BIG5', 0xa5, false],
  ['GBK', 0x81, true],
  ['UHC', 0x81, false],
  ['GB18030', 0x81, false],
  ['JOHAB', 0x84, true],
];

/**
 * A client encoding switch, then a \! that a lexer reading bytes one by one takes for part of a
 * string literal: after E'<lead>\' (backslash) or '<lead>' (quote) it sees the literal go on over
 * the \! line, while psql, in that encoding, sees <lead>\ or <lead>' as one character, the literal
 * closed, and the \! line as a meta-command (checked: without \restrict, psql 15 runs it).
 */
function encodingAttack(encoding: string, lead: number, via: 'SET' | 'set_config', trail: 'backslash' | 'quote'): Attack {
  const high = String.fromCharCode(lead);
  const change = via === 'SET' ? `SET client_encoding = '${encoding}';` : `SELECT pg_catalog.set_config('client_encoding', '${encoding}', false);`;
  return {
    name: `${encoding} via ${via}: 0x${lead.toString(16)} before a ${trail}, then \\!`,
    sql: (ctx) => `${change}\n${trail === 'backslash' ? `SELECT E'${high}\\'\n\\! touch ${ctx.marker.path()}\n-- ';` : `SELECT '${high}' || '\n\\! touch ${ctx.marker.path()}\n';`}`,
    // A SET the filter follows, so psql's own refusal of the \! ends the load; set_config it refuses first.
    refused: via === 'SET' ? META : UNFOLLOWED,
  };
}

const ENCODING_ATTACKS = ENCODINGS.flatMap(([encoding, lead, inPlace]) =>
  (['SET', 'set_config'] as const).flatMap((via) =>
    (['backslash', 'quote'] as const).map((trail) => ({ ...encodingAttack(encoding, lead, via, trail), inPlace: inPlace && ((via === 'SET') === (trail === 'backslash')) })),
  ),
);

function place(dump: string, text: string, where: Attack['where'] = 'end'): string {
  if (where === 'top') return afterHeader(dump, text);
  if (where === 'last') return `${dump}${dump.endsWith('\n') ? '' : '\n'}${text}\n`;
  return beforeEnd(dump, text);
}

/** The checks every hostile dump gets; returns the outcome for more. */
async function runAttack(attack: Attack, restrictLines: 'kept' | 'stripped', inPlace: boolean): Promise<{ ctx: Ctx; outcome: Outcome; text: string }> {
  const ctx = await prepared({ inPlace });
  const name = editDumpBytes(ctx.app, ctx.backup, 'uploaded-hostile.sql.gz', (sql) => {
    const payload = attack.sql(ctx, sql);
    return place(restrictLines === 'stripped' ? stripRestrict(sql) : sql, payload, attack.where);
  });
  const server = await serverState(ctx.database);

  const outcome = await restoreOutcome(ctx.app, name);
  await ctx.app.restore.idle();
  const text = outcomeText(outcome);

  // Nothing escaped, whatever the outcome.
  expect(ctx.marker.files(), text).toEqual([]);
  expect(await serverState(ctx.database), text).toEqual(server);
  expect(await loginRoles(ctx.database)).toEqual({ [ctx.owner]: true, [testCluster().user]: true });
  const { rows } = await ctx.app.db.query('SELECT current_user::text AS name, rolsuper FROM pg_roles WHERE rolname = current_user');
  expect(rows).toEqual([{ name: ctx.owner, rolsuper: false }]);
  // The README: the restore role is "made for the restore ... and dropped afterwards" (soft: the other checks still run).
  expect.soft(await restoreRoleLeft(ctx.database), `the restore role "${ctx.restoreRole}" was left behind`).toBe(false);

  if (outcome.status) expect(text).toMatch(inPlace ? /Restoring in place/ : /Restoring into a new database/);
  if (outcome.status?.task === 'done') {
    expect(attack.mayRestore, `restored, though the dump should have been refused:\n${text}`).toBe(true);
    if (attack.skipped) expect(text).toMatch(attack.skipped);
    expect(await snapshot(ctx.app.db)).toEqual(ctx.before);
  } else {
    if (outcome.status) {
      expect(outcome.status.task).toBe('error');
      expect(outcome.status.error).toMatch(/The database was not changed|Rolled back to .*: OK/);
    }
    expect(text).toMatch(attack.refused);
    expect(await snapshot(ctx.app.db)).toEqual(ctx.current);
  }
  await attack.afterwards?.(ctx, outcome);
  return { ctx, outcome, text };
}

const RESTRICT_LINES = ['kept', 'stripped'] as const;
const cases = (attacks: Attack[]) => attacks.flatMap((attack) => RESTRICT_LINES.map((lines) => [attack.name, lines, attack] as const));

describe('hostile dumps, staged restore', () => {
  it.each(cases(ATTACKS))('%s (dump\'s \\restrict lines %s)', async (_name, lines, attack) => {
    await runAttack(attack, lines, false);
  });

  it.each(cases(ENCODING_ATTACKS))('encoding: %s (dump\'s \\restrict lines %s)', async (_name, lines, attack) => {
    await runAttack(attack, lines, false);
  });
});

describe('hostile dumps, in place', () => {
  it.each(cases([...ATTACKS, ...ENCODING_ATTACKS].filter((attack) => attack.inPlace)))('%s (dump\'s \\restrict lines %s)', async (_name, lines, attack) => {
    await runAttack(attack, lines, true);
  });
});

describe('what the dump runs as', () => {
  const WHO =
    `CREATE TABLE public.who AS SELECT current_user::text AS name, session_user::text AS login,\n` +
    `  (SELECT row_to_json(r) FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)::text AS rights,\n` +
    `  pg_catalog.pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER') AS program,\n` +
    `  pg_catalog.pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') AS read_files,\n` +
    `  pg_catalog.pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') AS write_files,\n` +
    `  (SELECT count(*) FROM pg_catalog.pg_auth_members m WHERE m.member = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user))::int AS memberships;`;

  it.each([
    ['staged', false],
    ['in place', true],
  ])('%s: a login role that is no superuser and holds none of the rights', async (_path, inPlace) => {
    const ctx = await prepared({ inPlace });
    const name = editDumpBytes(ctx.app, ctx.backup, 'uploaded-who.sql.gz', (sql) => beforeEnd(sql, WHO));

    const outcome = await restoreOutcome(ctx.app, name);
    await ctx.app.restore.idle();

    expect(outcome.status?.task, outcomeText(outcome)).toBe('done');
    const { rows } = await ctx.app.db.query('SELECT * FROM public.who');
    expect(rows).toHaveLength(1);
    const who = rows[0];
    const expected = inPlace ? ctx.owner : ctx.restoreRole;
    // Logged in as that role (not SET ROLE, which a dump could undo).
    expect({ name: who.name, login: who.login }).toEqual({ name: expected, login: expected });
    expect(JSON.parse(who.rights)).toMatchObject({ rolname: expected, rolsuper: false, rolcreatedb: false, rolcreaterole: false, rolreplication: false, rolbypassrls: false });
    expect({ program: who.program, read: who.read_files, write: who.write_files, memberships: who.memberships }).toEqual({ program: false, read: false, write: false, memberships: 0 });
    // The restore role is gone once the restore is over.
    const { rows: left } = await withClient('postgres', (client) => client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [ctx.restoreRole]));
    expect(left).toEqual([]);
    // Everything restored belongs to the owner role.
    const { rows: owners } = await ctx.app.db.query(
      `SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relnamespace = 'public'::regnamespace
       UNION SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE pronamespace = 'public'::regnamespace
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = pg_proc.oid AND d.deptype = 'e')`,
    );
    expect(owners).toEqual([{ owner: ctx.owner }]);
  });
});

describe('code the dump leaves behind', () => {
  it.each([
    ['staged', false],
    ['in place', true],
  ])('%s: a trigger doing COPY TO PROGRAM and SECURITY DEFINER functions run with the owner role\'s rights only', async (_path, inPlace) => {
    const ctx = await prepared({ inPlace });
    const trigger = ctx.marker.path('trigger');
    const definer = ctx.marker.path('definer');
    const name = editDumpBytes(ctx.app, ctx.backup, 'uploaded-trigger.sql.gz', (sql) =>
      beforeEnd(
        sql,
        `CREATE FUNCTION public.lifeboat_evil_trigger() RETURNS trigger LANGUAGE plpgsql AS $f$\nBEGIN\n  COPY (SELECT 1) TO PROGRAM 'touch ${trigger}';\n  RETURN NEW;\nEND\n$f$;\n` +
          `CREATE TRIGGER lifeboat_evil AFTER INSERT ON public.users FOR EACH ROW EXECUTE FUNCTION public.lifeboat_evil_trigger();\n` +
          `CREATE FUNCTION public.lifeboat_definer() RETURNS text LANGUAGE sql SECURITY DEFINER AS $f$ SELECT current_user::text $f$;\n` +
          `CREATE FUNCTION public.lifeboat_definer_copy() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $f$ BEGIN COPY (SELECT 1) TO PROGRAM 'touch ${definer}'; END $f$;\n`,
      ),
    );
    const server = await serverState(ctx.database);

    const outcome = await restoreOutcome(ctx.app, name);
    await ctx.app.restore.idle();
    const text = outcomeText(outcome);

    expect(outcome.status?.task, text).toBe('done');
    expect(text).toMatch(inPlace ? /Restoring in place/ : /Restoring into a new database/);
    // The app creates a user: the trigger fires as the owner role, and PostgreSQL refuses its COPY.
    await expect(ctx.app.db.query("INSERT INTO users (email, name) VALUES ('after@example.com', 'After')")).rejects.toThrow(PROGRAM);
    await expect(ctx.app.userService.create({ email: 'service@example.com', password: 'a password', name: 'Service' })).rejects.toThrow(PROGRAM);
    await expect(ctx.app.db.query('SELECT public.lifeboat_definer_copy()')).rejects.toThrow(PROGRAM);
    expect(ctx.marker.files()).toEqual([]);
    // SECURITY DEFINER: the definer is the owner role, no superuser.
    const { rows: functions } = await ctx.app.db.query(
      `SELECT p.proname, pg_get_userbyid(p.proowner) AS owner, r.rolsuper, p.prosecdef FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
       WHERE p.proname LIKE 'lifeboat\\_%' ORDER BY 1`,
    );
    expect(functions).toEqual([
      { proname: 'lifeboat_definer', owner: ctx.owner, rolsuper: false, prosecdef: true },
      { proname: 'lifeboat_definer_copy', owner: ctx.owner, rolsuper: false, prosecdef: true },
      { proname: 'lifeboat_evil_trigger', owner: ctx.owner, rolsuper: false, prosecdef: false },
    ]);
    expect((await ctx.app.db.query('SELECT public.lifeboat_definer() AS who')).rows).toEqual([{ who: ctx.owner }]);
    expect((await ctx.app.db.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')).rows).toEqual([{ rolsuper: false }]);
    expect(await serverState(ctx.database)).toEqual(server);
  });
});

describe('extensions', () => {
  async function expectRefusedBeforeMaintenance(ctx: Ctx, name: string, start: () => Promise<unknown>) {
    const server = await serverState(ctx.database);
    const files = readdirSync(ctx.app.backups.backupsFolder).sort();
    const error = await start().then(
      () => null,
      (error: unknown) => error,
    );
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).status).toBe(400);
    expect((error as Error).message).toMatch(/"?dblink"?/);
    expect((error as Error).message).toContain(name);
    expect(ctx.app.maintenance.isActive()).toBe(false);
    expect(ctx.app.restore.running).toBe(false);
    // No restore point: nothing began.
    expect(readdirSync(ctx.app.backups.backupsFolder).sort()).toEqual(files);
    expect(await snapshot(ctx.app.db)).toEqual(ctx.current);
    expect(await serverState(ctx.database)).toEqual(server);
  }

  it('a dump asking for dblink where pg_dump writes extensions is refused before maintenance mode, naming it (web route)', async () => {
    const ctx = await prepared();
    const name = editDumpBytes(ctx.app, ctx.backup, 'uploaded-dblink.sql.gz', (sql) => {
      const at = sql.indexOf('CREATE EXTENSION IF NOT EXISTS pgcrypto');
      expect(at).toBeGreaterThan(0);
      return `${sql.slice(0, at)}CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA public;\n${sql.slice(at)}`;
    });
    await expectRefusedBeforeMaintenance(ctx, name, () => ctx.app.restore.startRestore(name, { by: 'test' }));
  });

  it('a dump asking for dblink right after its header is refused before maintenance mode, naming it (command line)', async () => {
    const ctx = await prepared();
    const name = editDumpBytes(ctx.app, ctx.backup, 'uploaded-dblink-top.sql.gz', (sql) => afterHeader(stripRestrict(sql), 'CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA public;'));
    await expectRefusedBeforeMaintenance(ctx, name, async () => ctx.app.restore.restore(await ctx.app.restore.validate(name), { by: 'test' }));
  });
});

describe('cluster dumps (pg_dumpall)', () => {
  function clusterDump(): string {
    const { host, port, user } = testCluster();
    return execFileSync(pgTool('pg_dumpall'), ['--clean', '--if-exists', '-h', host, '-p', String(port), '-U', user], { maxBuffer: 512 * 1024 * 1024 }).toString('latin1');
  }

  /** Inserts text after the line that opens the section of database `database` (its \connect line). */
  function inSection(sql: string, database: string, text: string): string {
    const header = sql.indexOf(`-- Database "${database}" dump`);
    expect(header).toBeGreaterThan(0);
    const connect = sql.indexOf(`\\connect ${database}\n`, header);
    expect(connect).toBeGreaterThan(header);
    const line = sql.indexOf('\n', connect) + 1;
    // After the \restrict line that follows \connect, when there is one.
    const next = sql.indexOf('\n', line) + 1;
    const at = sql.slice(line, next).startsWith('\\restrict ') ? next : line;
    return `${sql.slice(0, at)}${text}\n${sql.slice(at)}`;
  }

  async function restoreCluster(ctx: Ctx, sql: string) {
    writeFileSync(join(ctx.app.backups.backupsFolder, 'uploaded-cluster.sql.gz'), gzipSync(Buffer.from(sql, 'latin1')));
    const server = await serverState(ctx.database);
    const outcome = await restoreOutcome(ctx.app, 'uploaded-cluster.sql.gz');
    await ctx.app.restore.idle();
    const text = outcomeText(outcome);
    expect(ctx.marker.files(), text).toEqual([]);
    expect(await serverState(ctx.database), text).toEqual(server);
    expect(await loginRoles(ctx.database)).toEqual({ [ctx.owner]: true, [testCluster().user]: true });
    return { outcome, text };
  }

  it.each(RESTRICT_LINES)('hostile text in the roles section and in another database\'s section never runs (\\restrict lines %s)', async (lines) => {
    const instance = await startInstance();
    instances.push(instance);
    const { app, database } = instance;
    await seed(app.db);
    const before = await snapshot(app.db);
    const marker = new MarkerFolder();
    markers.push(marker);
    let sql = clusterDump();
    await changeData(app.db);
    const current = await snapshot(app.db);
    const ctx: Ctx = { instance, app, database, owner: roleNames(database).owner, restoreRole: roleNames(database).restore, backup: '', before, current, marker, inPlace: true };
    const globals = sql.indexOf('\n--\n-- Roles\n--\n');
    expect(globals).toBeGreaterThan(0);
    sql = `${sql.slice(0, globals)}\nALTER ROLE postgres NOLOGIN;\nALTER ROLE ${ctx.owner} SUPERUSER;\n\\! touch ${marker.path('globals')}\n${sql.slice(globals)}`;
    sql = inSection(sql, 'postgres', `\\! touch ${marker.path('other-meta')}\n${doExecute(`'COPY (SELECT 1) TO PROGRAM ''touch ${marker.path('other-sql')}'''`)}\nCREATE TABLE public.lifeboat_escaped (a int);`);
    if (lines === 'stripped') sql = stripRestrict(sql);

    const { outcome, text } = await restoreCluster(ctx, sql);

    const { rows } = await withClient('postgres', (client) => client.query("SELECT to_regclass('public.lifeboat_escaped')::text AS found"));
    expect(rows[0].found).toBeNull();
    if (outcome.status?.task === 'done') expect(await snapshot(app.db)).toEqual(before);
    else {
      expect(text).toMatch(/backslash commands are restricted|meta-command|pg_execute_server_program|must be superuser|permission denied/);
      expect(await snapshot(app.db)).toEqual(current);
    }
  });

  it.each(RESTRICT_LINES)('hostile text in the instance database\'s own section is refused (\\restrict lines %s)', async (lines) => {
    const instance = await startInstance();
    instances.push(instance);
    const { app, database } = instance;
    await seed(app.db);
    const before = await snapshot(app.db);
    const marker = new MarkerFolder();
    markers.push(marker);
    let sql = clusterDump();
    await changeData(app.db);
    const current = await snapshot(app.db);
    const ctx: Ctx = { instance, app, database, owner: roleNames(database).owner, restoreRole: roleNames(database).restore, backup: '', before, current, marker, inPlace: true };
    sql = inSection(sql, database, `${doExecute(`'COPY (SELECT 1) TO PROGRAM ''touch ${marker.path('sql')}'''`)}\n\\! touch ${marker.path('meta')}`);
    if (lines === 'stripped') sql = stripRestrict(sql);

    const { outcome, text } = await restoreCluster(ctx, sql);

    expect(outcome.status?.task, text).toBe('error');
    expect(text).toMatch(PROGRAM);
    expect(await snapshot(app.db)).toEqual(current);
  });
});
