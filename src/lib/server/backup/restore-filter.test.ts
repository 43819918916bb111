import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createRestoreFilter, UnsafeDumpError, type RestoreFilterOptions } from './restore-filter.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));
const clusterDump = fixture('cluster-dump.sql');
const databaseDump = fixture('database-dump.sql');

const defaults: RestoreFilterOptions = { connectingRole: 'postgres', databaseName: 'immich' };

interface Result {
  output: string;
  error?: Error;
}

/** Feeds the chunks through a filter; collects everything it emitted, and the error if any. */
function feed(chunks: Buffer[], options: Partial<RestoreFilterOptions> = {}): Promise<Result> {
  return new Promise((resolve) => {
    const filter = createRestoreFilter({ ...defaults, ...options });
    const out: Buffer[] = [];
    filter.on('data', (b: Buffer) => out.push(b));
    filter.on('end', () => resolve({ output: Buffer.concat(out).toString('utf8') }));
    filter.on('error', (error) => resolve({ output: Buffer.concat(out).toString('utf8'), error }));
    for (const chunk of chunks) filter.write(chunk);
    filter.end();
  });
}

const run = (input: string | Buffer, options?: Partial<RestoreFilterOptions>) =>
  feed([Buffer.isBuffer(input) ? input : Buffer.from(input)], options);

function bytewise(input: Buffer): Buffer[] {
  return Array.from({ length: input.length }, (_, i) => input.subarray(i, i + 1));
}

async function filtered(input: string | Buffer, options?: Partial<RestoreFilterOptions>): Promise<string> {
  const { output, error } = await run(input, options);
  if (error) throw error;
  return output;
}

async function refused(input: string, pattern: RegExp | string = /Refused/) {
  const { output, error } = await run(input);
  expect(error).toBeInstanceOf(UnsafeDumpError);
  expect(error?.message).toMatch(pattern);
  return output;
}

describe('search_path', () => {
  it('rewrites the pg_dump search_path reset like the reference CLI recipe', async () => {
    const out = await filtered("SET x = 1;\nSELECT pg_catalog.set_config('search_path', '', false);\n");
    expect(out).toBe("SET x = 1;\nSELECT pg_catalog.set_config('search_path', 'public, pg_catalog', true);\n");
  });

  it('leaves other set_config calls alone', async () => {
    const sql = "SELECT pg_catalog.set_config('search_path', 'x', false);\n";
    expect(await filtered(sql)).toBe(sql);
  });
});

describe('psql meta-commands', () => {
  it('refuses \\! at the start of a line and emits nothing of it', async () => {
    const output = await refused('SELECT 1;\n\\! touch /tmp/pwned\n', '"\\!" at line 2');
    expect(output).not.toContain('touch');
  });

  it('refuses \\! in the middle of a line, and not even the statement before it is passed on', async () => {
    const output = await refused('SELECT 1; \\! touch /tmp/pwned\n', '"\\!" at line 1');
    expect(output).toBe('');
  });

  it('gives the documented message', async () => {
    const { error } = await run('\\! id\n');
    expect(error?.message).toBe(
      'Refused: the dump contains the psql meta-command "\\!" at line 1. Only \\connect, \\restrict and \\unrestrict are allowed.',
    );
  });

  it.each([
    ['\\copy t from program \'id\'\n', '\\copy'],
    ['\\set ON_ERROR_STOP 0\n', '\\set'],
    ['\\i /etc/passwd\n', '\\i'],
    ['\\o /tmp/x\n', '\\o'],
    ["SELECT 'id' \\gexec\n", '\\gexec'],
    ['SELECT 1 \\; SELECT 2;\n', '\\;'],
    ['  \\connect immich\n', '\\connect'],
    ['SELECT 1\n\\connect immich\n;\n', '\\connect'],
    ['\\.\n', '\\.'],
  ])('refuses %j', async (sql, command) => {
    await refused(sql, `"${command}"`);
  });

  it('refuses a command hidden after a CR inside a -- comment (psql ends the comment there)', async () => {
    await refused('SELECT 1; -- note\r\\! touch /tmp/pwned\n', '"\\!"');
  });

  it.each([
    ['a string literal', "COMMENT ON TABLE t IS 'has \\! bang';\n"],
    ['a doubled-quote string', "SELECT 'it''s \\! fine';\n"],
    ['an E string', "SELECT E'\\'; \\\\! still inside';\n"],
    ['a quoted identifier', 'SELECT 1 AS "\\! x";\n'],
    ['a dollar quote', 'CREATE FUNCTION f() RETURNS void AS $body$\n\\! touch /tmp/x\n$body$ LANGUAGE sql;\n'],
    ['an empty-tag dollar quote', 'SELECT $$ \\! x $$;\n'],
    ['a line comment', 'SELECT 1; -- \\! touch /tmp/x\n'],
    ['a block comment', 'SELECT 1; /* \\! touch\n\\! more */ SELECT 2;\n'],
    ['a nested block comment', 'SELECT 1; /* outer /* inner */ \\! still comment */ SELECT 2;\n'],
    ['a multi-line string', "SELECT 'first\n\\! touch /tmp/x\nlast';\n"],
  ])('accepts \\! inside %s', async (_, sql) => {
    expect(await filtered(sql)).toBe(sql);
  });

  it('accepts \\! in COPY data, which psql does not interpret', async () => {
    const sql = 'COPY t (a, b) FROM stdin;\n\\! touch /tmp/x\tmore \\! data\n\\N\t\\\\\n\\.\nSELECT 1;\n';
    expect(await filtered(sql)).toBe(sql);
  });

  it('checks SQL again after the end of COPY data', async () => {
    await refused('COPY t FROM stdin;\n1\n\\.\n\\! touch /tmp/x\n', 'at line 4');
  });

  it('keeps \\restrict and \\unrestrict lines', async () => {
    const sql = '\\restrict abc123XYZ\nSELECT 1;\n\\unrestrict abc123XYZ\n';
    expect(await filtered(sql)).toBe(sql);
  });

  it('refuses \\restrict lines that carry anything but the key', async () => {
    await refused('\\restrict abc \\! id\n', 'malformed \\restrict');
    await refused('\\unrestrict abc\rxyz\n');
  });

  it('drops \\connect and \\c lines in a single-database dump, keeping line numbers', async () => {
    const out = await filtered('SELECT 1;\n\\connect immich\n\\c other\nSELECT 2;\n');
    expect(out).toBe('SELECT 1;\n\n\nSELECT 2;\n');
  });
});

describe('lexing like psql', () => {
  it('treats $1 as a parameter, not a dollar-quote tag', async () => {
    await refused('SELECT $1; \\! x\n');
    await refused('SELECT $1 $ \\! x\n');
  });

  it('treats $ inside an identifier as part of it, not a dollar quote', async () => {
    await refused('SELECT a$b$ \\! x\n');
  });

  it('does not end a statement at semicolons inside parentheses', async () => {
    await refused('SELECT (1;\nCOPY t FROM stdin;\n\\! id\n)\n;\n');
  });

  it("follows psql's BEGIN ATOMIC rule, so a COPY inside a function body starts no data", async () => {
    const sql =
      'CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; COPY t FROM stdin; END;\n\\! id\n';
    await refused(sql, 'at line 2');
  });

  it('ends BEGIN ATOMIC bodies where psql does', async () => {
    const sql =
      'CREATE OR REPLACE FUNCTION public.f(a integer) RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n SELECT (a + 1);\nEND;\nCOPY t FROM stdin;\n\\! data\n\\.\n';
    expect(await filtered(sql)).toBe(sql);
  });

  it('rewrites a literal with a backslash before a quote to U&, which psql reads the same whatever standard_conforming_strings says', async () => {
    const out = await filtered("ALTER TABLE t ADD CHECK ((s <> '\\'::text));\nSELECT 'a\\''b', x'00';\n");
    expect(out).toBe("ALTER TABLE t ADD CHECK ((s <> U&'\\\\'::text));\nSELECT U&'a\\\\''b', x'00';\n");
  });

  it('puts a space before the U& when the literal follows a word', async () => {
    expect(await filtered("SELECT text'\\';\n")).toBe("SELECT text U&'\\\\';\n");
  });

  it("refuses what psql would read as a command if standard_conforming_strings were switched off", async () => {
    // With the setting on, the literal is 'x\'; psql reading it with escapes would see no command at all.
    await refused("SELECT 'x\\'; \\! id; --';\n", '"\\!"');
  });

  it('refuses an ambiguous literal left open at the end of the input (it cannot be rewritten)', async () => {
    await refused("SELECT 'a\\'' ; \\! echo PWNED ; '';\n", 'unterminated string literal');
  });

  it('refuses an E literal that escapes its quote and then hides a command', async () => {
    await refused("SELECT E'it\\'s'; \\! id\n", '"\\!"');
  });

  it('accepts array slices but refuses psql variables', async () => {
    const sql = 'CREATE VIEW v AS SELECT (tags)[1:2], x::text, y := 1;\n';
    expect(await filtered(sql)).toBe(sql);
    await refused('SELECT :USER;\n', 'variable reference ":USER"');
    await refused("SELECT :'HOST';\n", 'variable');
    await refused('SELECT :{?ON_ERROR_STOP};\n', 'variable');
  });

  it('refuses bytes that psql versions or multi-byte encodings could read differently', async () => {
    await refused('SELECT 1abc;\n', 'malformed number');
    await refused('SELECT 0x1F;\n', 'malformed number');
    await refused('SELECT $1abc;\n', 'malformed parameter');
    await refused('SELECT caf\u00e9;\n', 'non-ASCII');
    await refused('SELECT 1 + \u00e9;\n', 'non-ASCII');
    await refused("SELECT N'\\';\n", "N'...'");
    await refused('SELECT $t\u00e9$ x $t\u00e9$;\n', 'non-ASCII');
    await refused("SELECT E'\u00e9\\';\n", 'non-ASCII');
    await refused('SELECT 1;\0\n', 'NUL byte at line 1');
  });

  it('accepts numbers pg_dump writes', async () => {
    const sql = 'SELECT 1, 1.5, .5, 1e+20, 1.5E-3, 1..10, 1::bigint;\n';
    expect(await filtered(sql)).toBe(sql);
  });

  it('accepts non-ASCII text inside quotes, comments and data', async () => {
    const sql = "-- Name: 日本語\nCOMMENT ON TABLE \"ünï\" IS 'cödé 😀';\nCOPY t FROM stdin;\n日本語\t😀\n\\.\n";
    expect(await filtered(sql)).toBe(sql);
  });
});

describe('COPY', () => {
  it.each(["COPY t FROM PROGRAM 'id';\n", "copy t to program 'id';\n", "COPY (SELECT 1) TO\n  Program 'id';\n"])(
    'refuses %j',
    async (sql) => {
      await refused(sql, 'PROGRAM');
    },
  );

  it('does not mistake the word program in a string for COPY PROGRAM', async () => {
    const sql = "COPY t (a) FROM stdin WITH (NULL 'program');\nx\n\\.\n";
    expect(await filtered(sql)).toBe(sql);
  });

  it('refuses another statement after COPY FROM stdin on the same line', async () => {
    await refused('COPY t FROM stdin; SELECT 1;\n1\n\\.\n', 'same line');
  });

  it('passes data lines that only look like the end marker', async () => {
    const sql = 'COPY t FROM stdin;\n\\.x\n \\.\n\\\\.\n\\.\nSELECT 1;\n';
    expect(await filtered(sql)).toBe(sql);
  });

  it('passes data to the end of input when there is no end marker', async () => {
    const sql = 'COPY t FROM stdin;\n1\n2';
    expect(await filtered(sql)).toBe(sql);
  });
});

describe('line endings and chunking', () => {
  it('strips CR from CRLF line endings, in SQL and in COPY data', async () => {
    const crlf = 'SELECT 1;\r\nCOPY t FROM stdin;\r\na\tb\r\n\\.\r\nSELECT 2;\r\n';
    expect(await filtered(crlf)).toBe('SELECT 1;\nCOPY t FROM stdin;\na\tb\n\\.\nSELECT 2;\n');
  });

  it('gives the same output whatever the chunk boundaries (one byte at a time)', async () => {
    for (const dump of [databaseDump, clusterDump]) {
      const whole = await feed([dump]);
      const byByte = await feed(bytewise(dump));
      expect(whole.error).toBeUndefined();
      expect(byByte.output).toBe(whole.output);
    }
  });

  it('handles CRLF, multi-byte characters and end markers split across chunks', async () => {
    const dump = Buffer.from(
      "SELECT 'é'; -- ü\r\nCOPY t FROM stdin;\r\n日本語\t😀\r\n\\N\r\n\\.\r\nSELECT '\\';\r\n\\restrict k\r\n",
    );
    const expected = "SELECT 'é'; -- ü\nCOPY t FROM stdin;\n日本語\t😀\n\\N\n\\.\nSELECT U&'\\\\';\n\\restrict k\n";
    expect((await feed([dump])).output).toBe(expected);
    expect((await feed(bytewise(dump))).output).toBe(expected);
    for (let cut = 1; cut < dump.length; cut++) {
      const { output } = await feed([dump.subarray(0, cut), dump.subarray(cut)]);
      expect(output, `cut at ${cut}`).toBe(expected);
    }
  });

  it('refuses a command split across chunks', async () => {
    const { error, output } = await feed(bytewise(Buffer.from('SELECT 1;\nSELECT 2; \\! id\n')));
    expect(error).toBeInstanceOf(UnsafeDumpError);
    expect(output).not.toContain('SELECT 2');
  });

  it('reports lines and statements', async () => {
    let stats: { lines: number; statements: number } | undefined;
    await filtered('SELECT 1; SELECT 2;\nCOPY t FROM stdin;\n1\n2\n\\.\n', { onStats: (s) => (stats = s) });
    expect(stats).toEqual({ lines: 5, statements: 3 });
  });
});

describe('roles', () => {
  it.each([
    'CREATE ROLE postgres;',
    'CREATE USER postgres WITH SUPERUSER;',
    'ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;',
    'ALTER USER "postgres" SET work_mem TO \'8MB\';',
    'ALTER ROLE CURRENT_USER SET work_mem TO 1;',
    'DROP ROLE IF EXISTS postgres;',
    'DROP USER postgres;',
    'DROP ROLE IF EXISTS immich_app;',
    'drop role "Other Role";',
  ])('drops %s', async (statement) => {
    expect(await filtered(`${statement}\nSELECT 1;\n`)).toBe('\nSELECT 1;\n');
  });

  it('compares the connecting role by its real name', async () => {
    const sql = 'CREATE ROLE "Admin";\nALTER ROLE admin WITH LOGIN;\n';
    const out = await filtered(sql, { connectingRole: 'Admin' });
    expect(out).toBe('\nALTER ROLE admin WITH LOGIN;\n');
  });

  it('makes CREATE ROLE of other roles safe to run twice', async () => {
    const out = await filtered('CREATE ROLE immich_app;\nCREATE ROLE "Reader Role";\n');
    expect(out).toBe(
      'DO $lifeboat$ BEGIN CREATE ROLE immich_app; EXCEPTION WHEN duplicate_object THEN NULL; END $lifeboat$;\n' +
        'DO $lifeboat$ BEGIN CREATE ROLE "Reader Role"; EXCEPTION WHEN duplicate_object THEN NULL; END $lifeboat$;\n',
    );
  });

  it('picks a dollar tag the statement does not contain', async () => {
    const out = await filtered("CREATE ROLE x PASSWORD '$lifeboat$';\n");
    expect(out).toContain('DO $lifeboat1$ BEGIN CREATE ROLE x');
    expect(out).toContain('END $lifeboat1$;');
  });

  it('keeps other role changes and user mappings', async () => {
    const sql =
      "ALTER ROLE immich_app WITH LOGIN PASSWORD 'x';\nGRANT pg_read_all_data TO immich_app;\nCREATE USER MAPPING FOR postgres SERVER s;\nDROP USER MAPPING IF EXISTS FOR postgres SERVER s;\n";
    expect(await filtered(sql)).toBe(sql);
  });

  it('keeps per-database role settings only for the instance database', async () => {
    const sql = "ALTER ROLE a IN DATABASE immich SET x TO '1';\nALTER ROLE a IN DATABASE other SET x TO '1';\n";
    expect(await filtered(sql)).toBe("ALTER ROLE a IN DATABASE immich SET x TO '1';\n\n");
  });
});

describe('database statements', () => {
  it('drops statements on databases: the live one stays as it is', async () => {
    const sql = [
      'DROP DATABASE IF EXISTS immich;',
      "CREATE DATABASE immich WITH TEMPLATE = template0 ENCODING = 'UTF8';",
      'ALTER DATABASE immich OWNER TO immich_app;',
      "ALTER DATABASE immich SET search_path TO '$user', 'public';",
      "COMMENT ON DATABASE immich IS 'x';",
      'GRANT CONNECT,TEMPORARY ON DATABASE immich TO immich_app;',
      'REVOKE ALL ON DATABASE template1 FROM PUBLIC;',
      "UPDATE pg_catalog.pg_database SET datistemplate = false WHERE datname = 'template1';",
      'GRANT SELECT ON TABLE public.database TO x;',
    ].join('\n');
    expect(await filtered(`${sql}\n`)).toBe('\n\n\n\n\n\n\n\nGRANT SELECT ON TABLE public.database TO x;\n');
  });

  it('restores a real pg_dump output unchanged except for the search_path line', async () => {
    const out = await filtered(databaseDump);
    const expected = databaseDump
      .toString()
      .replaceAll(
        "SELECT pg_catalog.set_config('search_path', '', false);",
        "SELECT pg_catalog.set_config('search_path', 'public, pg_catalog', true);",
      )
      .replace("(s <> '\\'::text)", "(s <> U&'\\\\'::text)");
    expect(out).toBe(expected);
  });
});

describe('cluster dumps (pg_dumpall)', () => {
  it('keeps the globals and only the section of the instance database', async () => {
    const out = await filtered(clusterDump);
    expect(out.split('\n').length).toBe(clusterDump.toString().split('\n').length); // same line numbers
    expect(out).not.toMatch(/^(DROP|CREATE|ALTER) DATABASE/m);
    expect(out).not.toMatch(/^\\connect/m);
    expect(out).not.toMatch(/ROLE postgres/);
    expect(out).not.toMatch(/^DROP ROLE/m);
    expect(out).not.toMatch(/^[^-].*template1/m); // only the globals' comment names it
    expect(out).not.toContain('public.o '); // the table of database "other"
    expect(out).toContain('DO $lifeboat$ BEGIN CREATE ROLE immich_app;');
    expect(out).toContain('COPY public.assets (id, name, note, data) FROM stdin;\n1\tback\\\\slash');
    expect(out).toContain("COMMENT ON TABLE public.assets IS 'has ; semicolon and \\! bang';");
    // restrict/unrestrict stay paired
    const restricts = out.match(/^\\restrict .*$/gm) ?? [];
    const unrestricts = out.match(/^\\unrestrict .*$/gm) ?? [];
    expect(restricts.length).toBeGreaterThan(1);
    expect(unrestricts.map((l) => l.replace('\\un', '\\'))).toEqual(restricts);
  });

  it('fails at the end when the dump has no section for the database', async () => {
    const { error } = await run(clusterDump, { databaseName: 'other_name' });
    expect(error?.message).toMatch(/no database "other_name" and several others \("immich", "other"\)/);
  });

  const smallCluster = (db: string, listed = true) =>
    [
      '--',
      '-- PostgreSQL database cluster dump',
      '--',
      listed ? `DROP DATABASE IF EXISTS ${db};` : '',
      'CREATE ROLE app;',
      '--',
      '-- Database "template1" dump',
      '--',
      '\\connect template1',
      'CREATE TABLE in_template1 ();',
      '--',
      `-- Database "${db}" dump`,
      '--',
      `CREATE DATABASE ${db};`,
      `\\connect -reuse-previous=on "dbname='${db}'"`,
      'CREATE TABLE kept ();',
      '--',
      '-- Database "postgres" dump',
      '--',
      '\\connect postgres',
      'CREATE TABLE in_postgres ();',
      '',
    ].join('\n');

  it('restores the only database of a dump made under another name, and says so', async () => {
    const notices: string[] = [];
    const out = await filtered(smallCluster('old_immich'), { onNotice: (m) => notices.push(m) });
    expect(out).toContain('CREATE TABLE kept ();');
    expect(out).not.toContain('in_template1');
    expect(out).not.toContain('in_postgres');
    expect(notices).toEqual(['The cluster dump has no database "immich"; restoring its only database "old_immich" into "immich".']);
  });

  it('reads the quoted \\connect form', async () => {
    const out = await filtered(smallCluster('immich'));
    expect(out).toContain('CREATE TABLE kept ();');
    expect(out).not.toContain('in_postgres');
  });

  it('without a DROP DATABASE list, only restores a section of the same name', async () => {
    const { error } = await run(smallCluster('old_immich', false));
    expect(error?.message).toMatch(/no section for the database "immich" \(it contains "old_immich"\)/);
  });

  it('treats a dump as a cluster dump only by its header', async () => {
    const out = await filtered('SELECT 1;\n-- PostgreSQL database cluster dump\n-- Database "x" dump\nSELECT 2;\n');
    expect(out).toContain('SELECT 2;');
  });
});
