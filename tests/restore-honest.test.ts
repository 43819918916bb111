import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { finished as streamFinished } from 'node:stream/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { startInstance, testCluster, withClient, type TestInstance } from './helpers/pg';
import { changeData, pgTool, seed, snapshot } from './restore-helpers';
import { bytes, dataDigest, dumpBytes, dumpText, editDumpBytes, oracleSchema, outcomeText, restoreOutcome, schemaDigest } from './security-helpers';

/**
 * Honest but odd dumps restore byte for byte: every table's rows and every function's source have
 * the same md5 after the restore as before the backup, and the schema's texts (defaults,
 * constraints, views, comments) are those the same dump gives when plain psql loads it. The restore
 * filter leaves out and rewrites statements; these make sure it never cuts or changes anything else.
 */

const instances: TestInstance[] = [];
const roles: string[] = [];
afterEach(async () => {
  for (const instance of instances.splice(0)) await instance.close();
  for (const role of roles.splice(0)) await withClient('postgres', (client) => client.query(`DROP ROLE IF EXISTS ${client.escapeIdentifier(role)}`));
});

async function instance() {
  const made = await startInstance();
  instances.push(made);
  await seed(made.app.db);
  return made;
}

type App = TestInstance['app'];

async function restore(app: App, name: string) {
  const outcome = await restoreOutcome(app, name);
  await app.restore.idle();
  return outcome;
}

/**
 * Tables and columns named program, copy and stdin; values with CRLF, lone CR, tabs, backslashes
 * after multibyte characters, and lines that look like psql meta-commands or COPY's end; function
 * bodies with CRLF line ends and such lines; comments, defaults and a view with the same.
 */
const ODD_SCHEMA = String.raw`
  CREATE TABLE public.program (id int PRIMARY KEY, program text, copy text, stdin text, "from" text);
  CREATE TABLE public.copy (program text, "stdin;" text, "FROM stdin" text);
  CREATE TABLE public.stdin (copy text);
  CREATE TABLE public."x FROM stdin" ("from program" text);
  CREATE TABLE public."COPY public.users FROM PROGRAM 'x';" (a text);
  COMMENT ON TABLE public.program IS E'first line\r\nsecond line \\ ĕ\\ 表\\';
  COMMENT ON COLUMN public.program.stdin IS E'\\! not a meta-command\r\n\\.\n\\connect postgres';
  ALTER TABLE public.program ADD COLUMN note text DEFAULT E'a\r\nb\\ ĕ\\';
  ALTER TABLE public.program ADD CONSTRAINT odd_check CHECK (program IS DISTINCT FROM E'\\\r\n');
  CREATE VIEW public.odd_view AS SELECT E'ĕ\\' AS a, E'x\r\ny' AS b, E'C:\\new\\' AS c, E'é\\n' AS d;
  CREATE FUNCTION public.crlf_body() RETURNS text LANGUAGE plpgsql AS E'BEGIN\r\n  RETURN ''a\r\nb'';\r\nEND\r\n';
  CREATE FUNCTION public.lone_cr() RETURNS text LANGUAGE sql AS E'SELECT ''x\r''::text\r';
  CREATE FUNCTION public.meta_lines() RETURNS text LANGUAGE sql AS $f$SELECT '
\! touch /tmp/lifeboat-never
\connect postgres
\restrict abc
\unrestrict abc
\.
COPY public.users FROM PROGRAM ''touch /tmp/lifeboat-never'';
'::text$f$;
  CREATE FUNCTION public.multibyte() RETURNS text LANGUAGE sql AS $f$ SELECT E'é\\n' || 'ĕ\' || '表\' || '功\\' || $q$ü\$q$ $f$;
  CREATE FUNCTION public."program"("copy" text, "stdin" text) RETURNS text LANGUAGE sql AS $$ SELECT "copy" || "stdin" $$;
`;

const ODD_VALUES = [
  'COPY public.users FROM PROGRAM \'touch /tmp/lifeboat-never\';',
  '\\.',
  'a\n\\.\nb',
  'line1\r\nline2\r\n',
  'lone\rcarriage return',
  'tab\there',
  '\\! touch /tmp/lifeboat-never',
  '\n\\connect postgres\n',
  '\\restrict abc',
  'é\\n',
  'ĕ\\',
  '表\\',
  '功\\\\',
  "ü\\'",
  "it's",
  'ends with a backslash\\',
  '$$ dollar $q$ quotes $$',
  '/* not a comment */ -- nor this',
];

/** In one transaction with standard_conforming_strings on (the std-off test's database has it off). */
async function createOddObjects(db: App['db']): Promise<void> {
  await db.withClient(async (client) => {
    await client.query('BEGIN');
    await client.query('SET LOCAL standard_conforming_strings = on');
    await client.query(ODD_SCHEMA);
    for (const [index, value] of ODD_VALUES.entries()) {
      await client.query('INSERT INTO public.program (id, program, copy, stdin, "from") VALUES ($1, $2, $3, $4, $5)', [index, value, `${value}|copy`, `stdin|${value}`, [...value].reverse().join('')]);
      await client.query('INSERT INTO public.copy (program, "stdin;", "FROM stdin") VALUES ($1, $2, $3)', [value, value, value]);
    }
    await client.query('INSERT INTO public.stdin (copy) SELECT program FROM public.program');
    await client.query('INSERT INTO public."x FROM stdin" ("from program") SELECT copy FROM public.program');
    await client.query(`INSERT INTO public."COPY public.users FROM PROGRAM 'x';" (a) SELECT stdin FROM public.program`);
    await client.query("UPDATE users SET name = E'Ada\\\\ ĕ\\\\ \r\n' WHERE is_admin");
    await client.query('COMMIT');
  });
}

/**
 * Rows of `table` not written frozen (heap tuples without both XMIN bits of HEAP_XMIN_FROZEN), read
 * with pageinspect as the superuser. A restore loads the tables it creates WITH (FREEZE).
 */
async function unfrozenRows(database: string, table: string): Promise<{ rows: number; unfrozen: number }> {
  return withClient(database, async (client) => {
    await client.query('CREATE EXTENSION IF NOT EXISTS pageinspect');
    try {
      const { rows } = await client.query(
        `SELECT count(*)::int AS rows, count(*) FILTER (WHERE (t_infomask & 768) <> 768)::int AS unfrozen
           FROM generate_series(0, (pg_relation_size($1::regclass) / current_setting('block_size')::int - 1)::int) AS block,
                LATERAL heap_page_items(get_raw_page($1::text, block)) WHERE lp_flags = 1`,
        [table],
      );
      return rows[0];
    } finally {
      await client.query('DROP EXTENSION pageinspect');
    }
  });
}

describe('honest odd dumps round-trip byte for byte', () => {
  it.each([
    ['staged', false],
    ['in place', true],
  ])('%s: names program/copy/stdin, CRLF, backslashes after multibyte characters, meta-command-like lines', async (_path, inPlace) => {
    const { app, database } = await instance();
    await createOddObjects(app.db);
    const data = await dataDigest(app.db);
    const { filename } = await app.backups.createBackup();
    const schema = await oracleSchema(dumpBytes(app, filename));
    // The dump really holds the odd bytes the test is about.
    const dump = readFileSync(join(app.backups.backupsFolder, filename));
    const text = gunzipSync(dump).toString('latin1');
    expect(text).toContain('COPY public.program (id, program, copy, stdin, "from", note) FROM stdin;');
    expect(text).toContain('\r\n  RETURN ');
    expect(text).toContain(bytes('ĕ\\'));
    expect(text).toMatch(/^\\! touch \/tmp\/lifeboat-never$/m);
    await changeData(app.db);
    await app.db.query('DROP TABLE public.copy');
    if (inPlace) await withClient('postgres', (client) => client.query(`COMMENT ON DATABASE ${client.escapeIdentifier(database)} IS 'forces an in-place restore'`));

    const outcome = await restore(app, filename);

    expect(outcome.status?.task, outcomeText(outcome)).toBe('done');
    expect(outcomeText(outcome)).toMatch(inPlace ? /Restoring in place/ : /Restoring into a new database/);
    expect(await dataDigest(app.db)).toEqual(data);
    expect.soft(await schemaDigest(app.db), 'the schema as plain psql loads the same dump').toEqual(schema);
    expect((await app.db.query('SELECT public.crlf_body() AS v')).rows[0].v).toBe('a\r\nb');
    // Loaded frozen, staged or in place (one transaction that created the tables).
    for (const table of ['public.program', 'public.copy', 'public.users']) {
      expect(await unfrozenRows(database, table), table).toEqual({ rows: expect.any(Number), unfrozen: 0 });
      expect((await unfrozenRows(database, table)).rows, table).toBeGreaterThan(0);
    }
  });

  it('U&"..." identifiers, with and without UESCAPE, in COPY and GRANT statements', async () => {
    const { app } = await instance();
    const reader = `lifeboat_reader_${randomBytes(3).toString('hex')}`;
    roles.push(reader);
    await withClient('postgres', (client) => client.query(`CREATE ROLE ${reader}`));
    await app.db.query(String.raw`CREATE TABLE public.U&"\00e9t\00e9" (id int, U&"na\00efve" text)`);
    await app.db.query(`INSERT INTO public."été" VALUES (1, 'un'), (2, E'deux\\\\'), (3, NULL)`);
    await app.db.query(`GRANT SELECT ON public."été" TO ${reader}`);
    await createOddObjects(app.db);
    const data = await dataDigest(app.db);
    const acl = await app.db.query(`SELECT relacl::text AS acl FROM pg_class WHERE oid = 'public."été"'::regclass`);
    const { filename } = await app.backups.createBackup();
    await changeData(app.db);
    await app.db.query(`DROP TABLE public."été"`);

    // pg_dump writes "été": the edited dump spells the same names in Unicode escapes.
    let replaced = 0;
    const readerEscaped = [...reader].map((char) => `\\${char.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
    const name = editDumpBytes(app, filename, 'uploaded-unicode.sql.gz', (sql) =>
      sql
        .replaceAll(bytes('public."été"'), () => (replaced++, String.raw`public.U&"\00e9t\00e9"`))
        .replaceAll(bytes('"naïve"'), () => (replaced++, `U&"na!00efve" UESCAPE '!'`))
        .replaceAll(`TO ${reader};`, () => (replaced++, `TO U&"${readerEscaped}";`)),
    );
    expect(replaced).toBeGreaterThanOrEqual(4);
    expect(dumpText(app, name)).toContain(`COPY public.U&"\\00e9t\\00e9" (id, U&"na!00efve" UESCAPE '!') FROM stdin;`);
    const schema = await oracleSchema(dumpBytes(app, name));

    const outcome = await restore(app, name);

    expect(outcome.status?.task, outcomeText(outcome)).toBe('done');
    expect(await dataDigest(app.db)).toEqual(data);
    expect.soft(await schemaDigest(app.db), 'the schema as plain psql loads the same dump').toEqual(schema);
    // The GRANT to an existing role, spelled U&"...", was kept.
    expect((await app.db.query(`SELECT relacl::text AS acl FROM pg_class WHERE oid = 'public."été"'::regclass`)).rows).toEqual(acl.rows);
    expect(outcomeText(outcome)).not.toContain(`"${reader}"`);
  });

  it('a database whose dump was made with standard_conforming_strings = off', async () => {
    const { app, database } = await instance();
    await withClient('postgres', (client) => client.query(`ALTER DATABASE ${client.escapeIdentifier(database)} SET standard_conforming_strings = off`));
    await app.db.closePool();
    expect((await app.db.query('SHOW standard_conforming_strings')).rows[0].standard_conforming_strings).toBe('off');
    // E'' literals mean the same with either setting.
    await app.db.query(String.raw`
      CREATE TABLE public.legacy (id int PRIMARY KEY, a text DEFAULT E'C:\\new\\', b text CHECK (b <> E'\\'), c text);
      COMMENT ON TABLE public.legacy IS E'back\\slash ''q'' ĕ\\ \\'' ; ';
      COMMENT ON COLUMN public.legacy.c IS E'\\'';\n\\! not a meta-command\n-- ''';
      CREATE VIEW public.legacy_view AS SELECT E'a\\'' ; b' AS x, E'ĕ\\' AS y, E'\\\\' AS z;
      CREATE FUNCTION public.legacy_fn() RETURNS text LANGUAGE sql AS $f$ SELECT E'é\\n' || E'\\''' $f$;
    `);
    const values = ['C:\\new\\', "\\'", '\\\\', 'ĕ\\', "';\n\\! not a meta-command\n--", 'plain'];
    for (const [index, value] of values.entries()) await app.db.query('INSERT INTO public.legacy (id, b, c) VALUES ($1, $2, $3)', [index, value, value]);
    await createOddObjects(app.db);
    const data = await dataDigest(app.db);
    const { filename } = await app.backups.createBackup();
    const schema = await oracleSchema(dumpBytes(app, filename));
    const text = dumpText(app, filename);
    expect(text).toContain('SET standard_conforming_strings = off;');
    // pg_dump then doubles every backslash in its literals.
    expect(text).toContain(String.raw`COMMENT ON TABLE public.legacy IS 'back\\slash ''q'' ĕ\\ \\'' ; ';`);
    await changeData(app.db);
    await app.db.query('DELETE FROM public.legacy');

    const outcome = await restore(app, filename);

    expect(outcome.status?.task, outcomeText(outcome)).toBe('done');
    expect(await dataDigest(app.db)).toEqual(data);
    expect.soft(await schemaDigest(app.db), 'the schema as plain psql loads the same dump').toEqual(schema);
    // The database keeps its setting (it has settings, so the restore ran in place).
    expect(outcomeText(outcome)).toMatch(/Restoring in place/);
    const { rows } = await withClient('postgres', (client) =>
      client.query('SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1 AND s.setrole = 0', [database]),
    );
    expect(rows).toEqual([{ setconfig: ['standard_conforming_strings=off'] }]);
  });

  it('a GRANT to a role dropped before the restore is skipped and listed; one to a role that exists is kept', async () => {
    const { app, database } = await instance();
    const suffix = randomBytes(3).toString('hex');
    const [gone, kept] = [`lifeboat_gone_${suffix}`, `lifeboat_kept_${suffix}`];
    roles.push(gone, kept);
    await withClient('postgres', (client) => client.query(`CREATE ROLE ${gone}; CREATE ROLE ${kept}`));
    await app.db.query(`GRANT SELECT ON public.users TO ${gone}; GRANT SELECT (email), UPDATE (name) ON public.users TO ${gone}; GRANT SELECT, INSERT ON public.assets TO ${kept}; GRANT USAGE ON SCHEMA public TO ${gone}`);
    await createOddObjects(app.db);
    await app.db.query(`GRANT SELECT ON public.program TO ${gone}, ${kept}`);
    const data = await dataDigest(app.db);
    const { filename } = await app.backups.createBackup();
    expect(dumpText(app, filename)).toContain(`GRANT SELECT ON TABLE public.users TO ${gone};`);
    await withClient(database, (client) => client.query(`DROP OWNED BY ${gone}`));
    await withClient('postgres', (client) => client.query(`DROP ROLE ${gone}`));
    const schema = await oracleSchema(dumpBytes(app, filename));
    await changeData(app.db);

    const outcome = await restore(app, filename);
    const text = outcomeText(outcome);

    expect(outcome.status?.task, text).toBe('done');
    expect(await dataDigest(app.db)).toEqual(data);
    expect.soft(await schemaDigest(app.db), 'the schema as plain psql loads the same dump').toEqual(schema);
    // The log lists the missing role, once.
    const lines = outcome.status!.log.filter((line) => line.includes(gone));
    expect(lines.length, text).toBe(1);
    expect(lines[0]).toMatch(/skipped/i);
    expect(text).not.toContain(kept);
    const { rows } = await app.db.query(
      `SELECT has_table_privilege($1, 'public.assets', 'INSERT') AS assets, has_table_privilege($1, 'public.program', 'SELECT') AS program, has_table_privilege($1, 'public.users', 'SELECT') AS users`,
      [kept],
    );
    expect(rows).toEqual([{ assets: true, program: true, users: false }]);
  });

  it('a pg_dumpall cluster dump: the instance database\'s section is restored', async () => {
    const { app, database } = await instance();
    await createOddObjects(app.db);
    const data = await dataDigest(app.db);
    // The instance's section of a cluster dump is what pg_dump writes: the oracle loads that.
    const { filename } = await app.backups.createBackup();
    const schema = await oracleSchema(dumpBytes(app, filename));
    const { host, port, user } = testCluster();
    const sql = execFileSync(pgTool('pg_dumpall'), ['--clean', '--if-exists', '-h', host, '-p', String(port), '-U', user], { maxBuffer: 512 * 1024 * 1024 });
    writeFileSync(join(app.backups.backupsFolder, 'uploaded-cluster.sql.gz'), gzipSync(sql));
    const others = async () =>
      (await withClient('postgres', (client) => client.query(`SELECT datname, oid::int FROM pg_database WHERE datname <> $1 ORDER BY 1`, [database]))).rows;
    const before = await others();
    await changeData(app.db);

    const dump = await app.restore.validate('uploaded-cluster.sql.gz');
    expect(dump.kind).toBe('cluster');
    const outcome = await restore(app, 'uploaded-cluster.sql.gz');

    expect(outcome.status?.task, outcomeText(outcome)).toBe('done');
    expect(outcomeText(outcome)).toMatch(/cluster dump/);
    expect(await dataDigest(app.db)).toEqual(data);
    expect.soft(await schemaDigest(app.db), 'the schema as plain psql loads the same dump').toEqual(schema);
    // No other database was dropped or made again.
    expect(await others()).toEqual(before);
  });
});

describe('a gzip bomb', () => {
  const GiB = 1024 ** 3;
  const MiB = 1024 ** 2;

  /**
   * A real dump's header, then one line that never ends: ~10 GiB of "a" (concatenated gzip members
   * of the same 16 MiB, ~10 MB on disk). Nothing may hold that line in the app's memory.
   */
  async function writeBomb(app: App, source: string, target: string): Promise<number> {
    const head = dumpText(app, source);
    const at = head.indexOf('SET row_security = off;\n');
    expect(at).toBeGreaterThan(0);
    const path = join(app.backups.backupsFolder, target);
    const out = createWriteStream(path);
    const write = (chunk: Buffer) => (out.write(chunk) ? Promise.resolve() : new Promise<void>((resolve) => out.once('drain', () => resolve())));
    await write(gzipSync(Buffer.from(`${head.slice(0, at)}SET row_security = off;\n\nINSERT INTO public.users (email) VALUES ('`)));
    const member = gzipSync(Buffer.alloc(16 * MiB, 'a'), { level: 9 });
    const count = Math.ceil((10 * GiB) / (16 * MiB));
    for (let i = 0; i < count; i++) await write(member);
    out.end();
    await streamFinished(out);
    return member.length * count;
  }

  it('~10 MB inflating to ~10 GB on one line fails cleanly, the database unchanged, with bounded memory', { timeout: 30 * 60_000 }, async () => {
    const { app } = await instance();
    const { filename } = await app.backups.createBackup();
    const size = await writeBomb(app, filename, 'uploaded-bomb.sql.gz');
    expect(size).toBeLessThan(16 * MiB);
    await changeData(app.db);
    const current = await snapshot(app.db);

    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    let outcome: Awaited<ReturnType<typeof restore>>;
    try {
      outcome = await restore(app, 'uploaded-bomb.sql.gz');
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    const text = outcomeText(outcome);

    // Refused before it began, or failed with the database unchanged.
    if (outcome.status) {
      expect(outcome.status.task, text).toBe('error');
      expect(outcome.status.error).toMatch(/The database was not changed|Rolled back to .*: OK/);
    }
    expect(await snapshot(app.db)).toEqual(current);
    expect(peak - baseline, `RSS grew by ${Math.round((peak - baseline) / MiB)} MiB\n${text}`).toBeLessThan(64 * MiB);
  });
});
