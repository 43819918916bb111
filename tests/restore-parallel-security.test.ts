import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roleNames } from '../src/lib/server/db/roles';
import { startInstance, testCluster, withClient, type TestInstance } from './helpers/pg';
import { seed, snapshot } from './restore-helpers';
import { editDumpBytes, loginRoles, MarkerFolder, outcomeText, restoreOutcome, restoreRoleLeft, serverState, type Outcome } from './security-helpers';

/**
 * Hostile dumps against the staged restore's parallel load (parallel-load.ts, dump-splitter.ts,
 * post-data-plan.ts, spool.ts): the splitter's lexer and psql are made to disagree about where a
 * COPY block or a replayed setting ends, COPY statements name tables the load should not empty,
 * and sessions are made to wait or fail. Whatever happens, psql's restricted mode and the
 * unprivileged restore role hold: no file in the marker folder, no server state changed, and
 * nothing left behind (no staged database, no spool folder, no restore role, no psql process,
 * no session of the restore). One instance serves every case (RESTORE_JOBS=3, a small seed):
 * each case starts from what the instance holds and checks it is unchanged after a failure.
 */

let instance: TestInstance;
let backup: string;
let backupData: Awaited<ReturnType<typeof snapshot>>;
const marker = new MarkerFolder();

beforeAll(async () => {
  instance = await startInstance({ env: { RESTORE_JOBS: '3' } });
  await seed(instance.app.db, { assets: 40 });
  ({ filename: backup } = await instance.app.backups.createBackup());
  backupData = await snapshot(instance.app.db);
}, 120_000);

afterAll(async () => {
  await withClient('postgres', async (client) => {
    const { rows } = await client.query('SELECT datname FROM pg_database WHERE datistemplate AND starts_with(datname, $1)', [instance.database]);
    for (const row of rows) await client.query(`ALTER DATABASE ${client.escapeIdentifier(row.datname)} IS_TEMPLATE false`);
  });
  await instance?.close();
  marker.remove();
}, 120_000);

const PROGRAM = /must be superuser or have privileges of the pg_execute_server_program role/;
const META = /backslash commands are restricted|meta-command/i;

/** Inserts text right before the dump's first COPY block (the end of its pre-data). */
function beforeFirstCopy(sql: string, text: string): string {
  const at = sql.search(/^COPY /m);
  if (at < 0) throw new Error('the dump has no COPY block');
  return `${sql.slice(0, at)}${text}\n${sql.slice(at)}`;
}

/** Inserts text right after the dump's last COPY block (the start of what follows the data). */
function afterLastCopy(sql: string, text: string): string {
  const start = sql.lastIndexOf('\nCOPY ');
  const end = sql.indexOf('\n\\.\n', start) + 4;
  if (start < 0 || end < 4) throw new Error('the dump has no COPY block');
  return `${sql.slice(0, end)}${text}\n${sql.slice(end)}`;
}

/** psql processes this test process started that are still running (a leak if any after a restore). */
function psqlChildren(): string[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)])
      .toString()
      .split('\n')
      .filter((line) => /\bpsql\b/.test(line));
  } catch {
    return [];
  }
}

async function leftovers(database: string) {
  const { restore } = roleNames(database);
  return withClient('postgres', async (client) => {
    const staged = await client.query<{ datname: string }>("SELECT datname FROM pg_database WHERE starts_with(datname, $1) AND datname LIKE '%\\_\\_lifeboat\\_%' ORDER BY 1", [database]);
    const sessions = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [restore]);
    return { databases: staged.rows.map((row) => row.datname), sessions: sessions.rows[0].n };
  });
}

interface Expect {
  /** The restore must end done (the hostile text changed nothing it could not). */
  done?: boolean;
  /** What the error must name when it fails. */
  refused?: RegExp;
}

/** Runs an edited copy of the one backup through the real restore and checks that nothing escaped and nothing was left behind. */
async function attack(file: string, edit: (sql: string) => string, want: Expect): Promise<{ outcome: Outcome; text: string }> {
  const { app, database } = instance;
  const name = editDumpBytes(app, backup, `${file}.sql.gz`, edit);
  const server = await serverState(database);
  const before = await snapshot(app.db);

  const outcome = await restoreOutcome(app, name);
  await app.restore.idle();
  const text = outcomeText(outcome);

  expect(marker.files(), text).toEqual([]);
  expect(await serverState(database), text).toEqual(server);
  expect(await loginRoles(database)).toEqual({ [roleNames(database).owner]: true, [testCluster().user]: true });
  expect(await restoreRoleLeft(database), `the restore role was left behind\n${text}`).toBe(false);
  expect(existsSync(join(instance.uploadLocation, '.lifeboat', 'restore-spool')), `the spool folder was left behind\n${text}`).toBe(false);
  expect(await leftovers(database), text).toEqual({ databases: [], sessions: 0 });
  expect(psqlChildren(), `psql processes left running\n${text}`).toEqual([]);
  const { rows } = await app.db.query('SELECT current_user::text AS name, rolsuper FROM pg_roles WHERE rolname = current_user');
  expect(rows).toEqual([{ name: roleNames(database).owner, rolsuper: false }]);

  expect(outcome.refused, text).toBeUndefined();
  expect(text).toMatch(/Restoring into a new database/);
  expect(text, 'the parallel load ran').toMatch(/on [2-9] connections|the data of|another part of the load|while loading/);
  if (want.done) {
    expect(outcome.status?.task, text).toBe('done');
    expect(await snapshot(app.db)).toEqual(backupData);
  } else {
    expect(outcome.status?.task, text).toBe('error');
    expect(outcome.status?.error).toMatch(/The database was not changed|Rolled back to .*: OK/);
    if (want.refused) expect(text).toMatch(want.refused);
    expect(await snapshot(app.db)).toEqual(before);
  }
  return { outcome, text };
}

const EVIL_TABLE = 'CREATE TABLE public.lifeboat_evil (t text);';

describe('parallel load: the splitter and psql disagree about a replayed setting', () => {
  // pg_dump's header sets standard_conforming_strings first; a setting replayed later keeps that first
  // place but the last value. So a set_config read with the strings standard is replayed after the
  // switch to backslash escapes: psql on the COPY's connection then reads `'a\'` as an open string,
  // through our BEGIN, TRUNCATE and COPY, into the rows. The rows (data, let through by the filter)
  // are then read as SQL and meta-commands on that connection: restricted mode and the role must refuse them.
  const swallow = (rows: string) =>
    `${EVIL_TABLE}\nSELECT pg_catalog.set_config('lifeboat.x', 'a\\', false);\nSET standard_conforming_strings = off;\n` +
    `COPY public.lifeboat_evil (t) FROM stdin;\n${rows}\n\\.\nSET standard_conforming_strings = on;`;

  // Since the COPY's connection starts with a DO block of its own (quotes included), the open string
  // now ends inside it and psql stops on a syntax error before any row is read as SQL: either way nothing runs.
  it('rows read as SQL on the COPY connection: COPY TO PROGRAM is refused by the role', async () => {
    await attack('swallow-sql', (sql) => beforeFirstCopy(sql, swallow(`x', false); COPY (SELECT 1) TO PROGRAM 'touch ${marker.path('sql')}'; SELECT 'y`)), { refused: new RegExp(`${PROGRAM.source}|syntax error`) });
  });

  it('rows read as psql input on the COPY connection: \\! is refused by restricted mode', async () => {
    await attack('swallow-meta', (sql) => beforeFirstCopy(sql, swallow(`x', false);\n\\! touch ${marker.path('meta')}\n\\o ${marker.path('o')}\nSELECT 'y`)), { refused: new RegExp(`${META.source}|syntax error`, 'i') });
  });

  it('rows read as psql input: \\unrestrict with a guessed key, then \\! and \\copy', async () => {
    await attack(
      'swallow-unrestrict',
      (sql) => beforeFirstCopy(sql, swallow(`x', false);\n\\unrestrict 00000000\n\\! touch ${marker.path('meta')}\n\\copy (SELECT 1) TO '${marker.path('copy')}'\nSELECT 'y`)),
      { refused: /wrong key|backslash commands are restricted|meta-command|syntax error/i },
    );
  });

  it('an unterminated quote in a replayed set_config swallows our COMMIT: the load fails, nothing half-loaded is swapped in', async () => {
    await attack('swallow-commit', (sql) => beforeFirstCopy(sql, swallow('x')), { refused: /unterminated quoted string|syntax error/ });
  });

});

describe('parallel load: COPY blocks the splitter cuts where psql would not', () => {
  // One successful restore for the odd texts that must load as psql loads them (a restore that succeeds costs twice one that fails).
  it('a COPY in a dollar quote stays text; three blocks of one table under three spellings keep all rows; a set_config SELECT with side effects is replayed', async () => {
    const text =
      `CREATE TABLE public.lifeboat_dollar (t text);\nINSERT INTO public.lifeboat_dollar VALUES ('kept');\nSELECT $q$\nCOPY public.lifeboat_dollar (t) FROM stdin;\n\\! touch ${marker.path('dollar')}\n\\.\n$q$;\n` +
      `CREATE TABLE public.lifeboat_runs (pid int);\n` +
      `CREATE FUNCTION public.lifeboat_run() RETURNS text LANGUAGE sql AS $f$ INSERT INTO public.lifeboat_runs VALUES (pg_catalog.pg_backend_pid()) RETURNING 'x' $f$;\n` +
      `SELECT pg_catalog.set_config('lifeboat.z', public.lifeboat_run(), false);\n` +
      `${EVIL_TABLE}\nCOPY public.lifeboat_evil (t) FROM stdin;\nfirst\n\\.\nCOPY "public"."lifeboat_evil" (t) FROM stdin;\nsecond\n\\.\nCOPY public.LIFEBOAT_EVIL (t) FROM stdin;\nthird\n\\.`;
    const { text: log } = await attack('odd-texts', (sql) => beforeFirstCopy(sql, text), { done: true });
    const db = instance.app.db;
    // The dollar-quoted COPY was never a block: no TRUNCATE emptied the row inserted before it.
    expect((await db.query('SELECT t FROM public.lifeboat_dollar')).rows, log).toEqual([{ t: 'kept' }]);
    expect((await db.query('SELECT t FROM public.lifeboat_evil ORDER BY t')).rows, log).toEqual([{ t: 'first' }, { t: 'second' }, { t: 'third' }]);
    // Plain psql runs the SELECT once; the parallel load replays it on every COPY and post-data connection.
    const { rows } = await db.query('SELECT count(*)::int AS n FROM public.lifeboat_runs');
    console.log(`replayed set_config SELECT ran ${rows[0].n} time(s)`);
    expect(rows[0].n, log).toBeGreaterThanOrEqual(1);
  });
});

describe('parallel load: a COPY whose rows the lexer could not place', () => {
  // psql reads rows after any COPY ... FROM stdin; the lexer knows only pg_dump's `FROM stdin;` ending.
  it('a COPY with options after stdin: refused before the restore starts, nothing changed', async () => {
    const { app } = instance;
    const text = `CREATE TABLE public.lifeboat_inline (t text);\nCOPY public.lifeboat_inline (t) FROM stdin WITH (FORMAT text);\n\\! touch ${marker.path('inline')}\nrow\n\\.`;
    const name = editDumpBytes(app, backup, 'copy-options.sql.gz', (sql) => beforeFirstCopy(sql, text));
    const before = await snapshot(app.db);
    const outcome = await restoreOutcome(app, name);
    expect(outcome.refused?.message).toMatch(/options after stdin/);
    expect(await snapshot(app.db)).toEqual(before);
    expect(marker.files()).toEqual([]);
  });
});

describe('parallel load: what the COPY names, and the TRUNCATE before it', () => {
  it('COPY into a system catalog: no TRUNCATE, the role is refused', async () => {
    await attack('catalog', (sql) => beforeFirstCopy(sql, 'COPY pg_catalog.pg_authid (rolname) FROM stdin;\nevil\n\\.'), { refused: /permission denied/ });
  });

  it('COPY naming another database: refused', async () => {
    await attack('other-database', (sql) => beforeFirstCopy(sql, `COPY postgres.public.users (email) FROM stdin;\nevil@example.com\n\\.`), { refused: /cross-database references are not implemented|does not exist/ });
  });

  // The catalog session resolves an unqualified COPY name with its own search_path ("$user", public),
  // the COPY's connection with the one the dump set: the TRUNCATE is aimed at a table the COPY does not fill.
  it('an unqualified COPY under the dump\'s search_path: the TRUNCATE empties public\'s table of that name, which the COPY does not fill', async () => {
    const text =
      `CREATE TABLE public.lifeboat_victim (t text);\nINSERT INTO public.lifeboat_victim VALUES ('must stay');\n` +
      `CREATE SCHEMA lifeboat_s;\nCREATE TABLE lifeboat_s.lifeboat_victim (t text);\nSELECT pg_catalog.set_config('search_path', 'lifeboat_s', false);\n` +
      `COPY lifeboat_victim (t) FROM stdin;\ninto lifeboat_s\n\\.\nSELECT pg_catalog.set_config('search_path', '', false);`;
    const { text: log } = await attack('search-path', (sql) => beforeFirstCopy(sql, text), { done: true });
    const { rows: s } = await instance.app.db.query('SELECT t FROM lifeboat_s.lifeboat_victim');
    expect(s, log).toEqual([{ t: 'into lifeboat_s' }]);
    // Plain psql (and RESTORE_JOBS=1) keep this row.
    const { rows } = await instance.app.db.query('SELECT t FROM public.lifeboat_victim');
    expect(rows, log).toEqual([{ t: 'must stay' }]);
  });

  it('rows the pre-data INSERTs into a table before its COPY block are emptied by the TRUNCATE (plain psql keeps them)', async () => {
    const text = `${EVIL_TABLE}\nINSERT INTO public.lifeboat_evil VALUES ('inserted before the COPY');\nCOPY public.lifeboat_evil (t) FROM stdin;\ncopied\n\\.`;
    const { text: log } = await attack('insert-then-copy', (sql) => beforeFirstCopy(sql, text), { done: true });
    const { rows } = await instance.app.db.query('SELECT t FROM public.lifeboat_evil ORDER BY t');
    expect(rows, log).toEqual([{ t: 'copied' }, { t: 'inserted before the COPY' }]);
  });
});

describe('parallel load: sessions, roles and transactions', () => {
  it('COMMIT; PREPARE TRANSACTION inside a COPY connection (via a swallowed quote): refused, nothing kept', async () => {
    const text =
      `${EVIL_TABLE}\nSELECT pg_catalog.set_config('lifeboat.x', 'a\\', false);\nSET standard_conforming_strings = off;\n` +
      `COPY public.lifeboat_evil (t) FROM stdin;\nx', false); COMMIT; BEGIN; CREATE TABLE public.lifeboat_prepared (a int); PREPARE TRANSACTION 'lifeboat_evil'; SELECT 'y\n\\.\nSET standard_conforming_strings = on;`;
    await attack('prepare', (sql) => beforeFirstCopy(sql, text), { refused: /prepared transactions are disabled|PREPARE|syntax/i });
    const { rows } = await withClient('postgres', (client) => client.query('SELECT gid FROM pg_prepared_xacts'));
    expect(rows).toEqual([]);
  });

  it('the pre-data makes the staged database refuse further connections (CONNECTION LIMIT 0): the load fails cleanly', async () => {
    const text = `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I CONNECTION LIMIT 0', current_database()); END $$;`;
    await attack('connlimit', (sql) => beforeFirstCopy(sql, text), { refused: /too many connections|permission denied|not allowed/ });
  });

  it('the pre-data sets the staged database read-only for later sessions: the load fails cleanly', async () => {
    const text = `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); END $$;`;
    await attack('readonly', (sql) => beforeFirstCopy(sql, text), { refused: /read-only transaction|permission denied/ });
  });

});

describe('parallel load: an honest instance', () => {
  it('the instance database has a CONNECTION LIMIT below RESTORE_JOBS + 1 (the staged database copies it): the restore still succeeds', async () => {
    const { database } = instance;
    await withClient('postgres', (client) => client.query(`ALTER DATABASE ${client.escapeIdentifier(database)} CONNECTION LIMIT 2`));
    try {
      await attack('honest-connlimit', (sql) => sql, { done: true });
    } finally {
      await withClient('postgres', (client) => client.query(`ALTER DATABASE ${client.escapeIdentifier(database)} CONNECTION LIMIT -1`));
    }
  });
});
