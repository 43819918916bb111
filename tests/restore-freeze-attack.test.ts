import { spawnSync } from 'node:child_process';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { roleNames } from '../src/lib/server/db/roles';
import { createRestoreFilter } from '../src/lib/server/dump-filter';
import { FILTER_OPTIONS, filtered, latin1, outcome } from './helpers/filter-attack';
import { createDatabase, dropDatabase, startInstance, testCluster, withClient, type TestInstance } from './helpers/pg';
import { beforeEnd, changeData, pgTool, seed, snapshot } from './restore-helpers';
import { editDumpBytes, loginRoles, outcomeText, restoreOutcome, serverState } from './security-helpers';

/**
 * Hostile dumps aimed at the freezeCopies rewrite (COPY ... FROM stdin; of a table the stream
 * created becomes ... FROM stdin WITH (FREEZE);). The rewrite must never turn a statement psql
 * would have sent as it is into one PostgreSQL reads differently from what the filter's lexer
 * assumed: the lexer decides from the dump's bytes whether COPY data follows, psql from the
 * server's answer to the rewritten statement. If they disagree, COPY rows are read as SQL by the
 * filter (or the other way round), and what the filter leaves out (the dump's COMMIT, extensions
 * outside the allow-list...) goes to psql unseen.
 */

const lines = (bytes: Buffer) => bytes.toString('latin1').split('\n').length;

/**
 * The hidden COMMIT: `stdin<0xA0>;` is no COPY FROM stdin for psql's lexer, the filter's lexer or
 * PostgreSQL (0xA0 is an identifier byte; alone it is not even UTF-8), so the dump as written fails
 * there. JavaScript's \s and trimEnd() take U+00A0 (the byte read as Latin-1) for white space: the
 * first freezeCopy dropped it, and the server got a valid COPY FROM STDIN, whose rows psql then sent
 * as data while the filter read them as SQL (fixed: only pg_dump's exact ` FROM stdin;` is rewritten). A lone quote among the rows keeps the filter "inside a
 * string" past the \. line, so the COMMIT (and the CREATE EXTENSION) after it reach psql untouched.
 */
function hiddenCommit(table: string, after: string): string {
  return (
    `CREATE TABLE public.${table} (v text);\n` +
    `COPY public.${table} (v) FROM stdin\xa0;\n` +
    `'\n` +
    `\\.\n` +
    `COMMIT;\n` +
    `${after}\n` +
    `-- ';\n` +
    `SELECT 1/0;\n`
  );
}

describe('freezeCopy keeps the dump as psql reads it', () => {
  // The rewrite may add " WITH (FREEZE)" before the final semicolon; nothing else changes.
  const faithful = (input: Buffer, out: Buffer) => {
    const text = out.toString('latin1');
    const at = text.indexOf(' WITH (FREEZE)');
    const without = at < 0 ? text : text.slice(0, at) + text.slice(at + ' WITH (FREEZE)'.length);
    expect(JSON.stringify(without)).toBe(JSON.stringify(input.toString('latin1')));
  };

  it.each([
    ['a newline before the semicolon', 'CREATE TABLE public.t (v text);\nCOPY public.t (v) FROM stdin\n;\nx\n\\.\nSELECT 1/0;\n'],
    ['a CRLF before the semicolon', 'CREATE TABLE public.t (v text);\r\nCOPY public.t (v) FROM stdin\r\n;\r\nx\r\n\\.\r\nSELECT 1/0;\r\n'],
    ['lines of white space before the semicolon', 'CREATE TABLE public.t (v text);\nCOPY public.t (v) FROM stdin \n \n\t\n;\nx\n\\.\nSELECT 1/0;\n'],
  ])('%s: psql\'s line numbers stay the dump\'s', async (_name, dump) => {
    const input = latin1(dump);
    for (const bytewise of [false, true]) {
      const out = await filtered(input, { bytewise });
      expect(lines(out), out.toString('latin1')).toBe(lines(input));
      faithful(input, out);
    }
  });

  it.each([
    ['0xA0 before FROM', 'CREATE TABLE public.t (v text);\nCOPY public.t (v)\xa0FROM stdin;\nx\n\\.\n'],
    ['0xA0 before the semicolon', 'CREATE TABLE public.t (v text);\nCOPY public.t (v) FROM stdin\xa0;\nx\n\\.\n'],
    ['0xA0 and a space before the semicolon', 'CREATE TABLE public.t (v text);\nCOPY public.t (v) FROM stdin \xa0 ;\nx\n\\.\n'],
    ['SJIS: 0xA0 taking the newline before the semicolon', "SET client_encoding = 'SJIS';\nCREATE TABLE public.t (v text);\nCOPY public.t (v) FROM stdin \xa0\n;\nx\n\\.\n"],
  ])('%s: bytes that are no white space to psql are neither dropped nor re-encoded (or the COPY is refused)', async (_name, dump) => {
    const input = latin1(dump);
    for (const bytewise of [false, true]) {
      const result = await outcome(input, bytewise);
      // A COPY whose stdin is not its last word (0xA0 is a letter to psql) is refused since attack-5: psql would read rows the lexer does not.
      if ('refused' in result) expect(result.refused).toMatch(/COPY \.\.\. FROM stdin with options after stdin/);
      else faithful(input, latin1(result.out));
    }
  });

  it('a long run of CREATE TABLE with names PostgreSQL cuts to 63 bytes: the filter\'s memory stays bounded', async () => {
    setFlagsFromString('--expose_gc');
    const gc = runInNewContext('gc') as () => void;
    const filter = createRestoreFilter(FILTER_OPTIONS);
    filter.on('data', () => undefined);
    // One table for the server (IF NOT EXISTS, the same first 63 bytes), 64 names of 512 KiB for the filter.
    const pad = 'a'.repeat(512 * 1024);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 64; i++) {
      await new Promise<void>((resolve, reject) => filter.write(Buffer.from(`CREATE TABLE IF NOT EXISTS public."${pad}${i}" (v int);\n`), (error) => (error ? reject(error) : resolve())));
    }
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    filter.destroy();
    expect(grown / 2 ** 20, 'MiB kept after 32 MiB of CREATE TABLE statements').toBeLessThan(8);
  });
});

describe('a COMMIT hidden by the rewrite never runs', () => {
  const databases: string[] = [];
  const roles: string[] = [];
  afterAll(async () => {
    for (const database of databases) await dropDatabase(database);
    for (const role of roles) await withClient('postgres', (client) => client.query(`DROP ROLE IF EXISTS ${role}`));
  });

  it('psql, restricted, as an unprivileged role, in one transaction (as RestoreRepository.loadDump): a failing dump leaves nothing behind', async () => {
    const database = await createDatabase('freeze');
    databases.push(database);
    const role = `${database}_loader`;
    roles.push(role);
    await withClient('postgres', async (client) => {
      await client.query(`CREATE ROLE ${role} LOGIN`);
      await client.query(`ALTER DATABASE ${database} OWNER TO ${role}`);
    });
    const dump = latin1(hiddenCommit('frozen', 'CREATE TABLE public.escaped (v int);\nCREATE EXTENSION hstore;'));
    const out = await filtered(dump);
    const { host, port } = testCluster();
    const psql = spawnSync(pgTool('psql'), ['-X', '-q', '-h', host, '-p', String(port), '-U', role, '-d', database, '-v', 'ON_ERROR_STOP=1', '-f', '-'], {
      input: Buffer.concat([latin1(`\\restrict lifeboatfreezetest\nBEGIN; SET client_min_messages = warning; SET backend_flush_after = '2MB';\n`), out, latin1('\nCOMMIT;\n')]),
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    const stderr = psql.stderr.toString();
    expect(psql.status, stderr).not.toBe(0);
    const left = await withClient(database, async (client) => {
      const { rows } = await client.query(
        `SELECT (SELECT array_agg(relname::text ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r') AS tables,
                (SELECT array_agg(extname::text ORDER BY extname) FROM pg_extension WHERE extname <> 'plpgsql') AS extensions`,
      );
      return rows[0];
    });
    expect(left, `psql said:\n${stderr}`).toEqual({ tables: null, extensions: null });
  });
});

// Through the app the same dump is contained today by the in-place recovery (the restore point is
// loaded again whenever psql got any of the dump), though the log says "its transaction was rolled
// back" when the dump had committed it: this test keeps that backstop honest.
describe('the hidden COMMIT through the real in-place restore', () => {
  let instance: TestInstance | null = null;
  afterEach(async () => {
    await instance?.close();
    instance = null;
  });

  it('the restore fails, the data is as before it, and the dump\'s extension, table and role setting are gone', async () => {
    instance = await startInstance();
    const { app, database } = instance;
    await seed(app.db);
    const { filename } = await app.backups.createBackup();
    await changeData(app.db);
    const current = await snapshot(app.db);
    await withClient('postgres', (client) => client.query(`COMMENT ON DATABASE ${client.escapeIdentifier(database)} IS 'forces an in-place restore'`));
    const { owner } = roleNames(database);
    const name = editDumpBytes(app, filename, 'uploaded-freeze.sql.gz', (sql) =>
      beforeEnd(sql, hiddenCommit('lifeboat_frozen', `CREATE TABLE public.lifeboat_escaped (v int);\nCREATE EXTENSION hstore;\nALTER ROLE CURRENT_USER SET work_mem = '64kB';`)),
    );
    const server = await serverState(database);

    const outcome = await restoreOutcome(app, name);
    await app.restore.idle();
    const text = outcomeText(outcome);

    expect(outcome.status?.task, text).toBe('error');
    expect(text).toMatch(/Restoring in place/);
    expect(await snapshot(app.db), text).toEqual(current);
    expect(await serverState(database), text).toEqual(server);
    expect(await loginRoles(database)).toEqual({ [owner]: true, [testCluster().user]: true });
    const { rows } = await app.db.query(
      `SELECT to_regclass('public.lifeboat_escaped')::text AS escaped, to_regclass('public.lifeboat_frozen')::text AS frozen,
              (SELECT count(*)::int FROM pg_extension WHERE extname = 'hstore') AS hstore, current_setting('work_mem') AS work_mem`,
    );
    expect(rows[0], text).toEqual({ escaped: null, frozen: null, hstore: 0, work_mem: '4MB' });
  });
});
