import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createRestoreFilter, DisallowedExtensionError, scanDumpHead, type FilterSummary, type RestoreFilterOptions } from './index';
import { decodeUnicode } from './statement-rules';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));
const clusterDump = fixture('cluster-dump.sql');
const databaseDump = fixture('database-dump.sql');

const defaults: RestoreFilterOptions = {
  databaseName: 'immich',
  existingRoles: new Set(['postgres', 'immich_app']),
  allowedExtensions: new Set(['pgcrypto', 'pg_trgm', 'plpgsql', 'vectors']),
};

interface Result {
  output: Buffer;
  error?: Error;
  summary?: FilterSummary;
}

function feed(chunks: Buffer[], options: Partial<RestoreFilterOptions> = {}): Promise<Result> {
  return new Promise((resolve) => {
    let summary: FilterSummary | undefined;
    const filter = createRestoreFilter({ ...defaults, ...options, onSummary: (s) => (summary = s) });
    const out: Buffer[] = [];
    filter.on('data', (b: Buffer) => out.push(b));
    filter.on('end', () => resolve({ output: Buffer.concat(out), summary }));
    filter.on('error', (error) => resolve({ output: Buffer.concat(out), error }));
    for (const chunk of chunks) filter.write(chunk);
    filter.end();
  });
}

const toBuffer = (input: string | Buffer) => (Buffer.isBuffer(input) ? input : Buffer.from(input));
const bytewise = (input: Buffer) => Array.from({ length: input.length }, (_, i) => input.subarray(i, i + 1));

async function filtered(input: string | Buffer, options?: Partial<RestoreFilterOptions>): Promise<string> {
  const { output, error } = await feed([toBuffer(input)], options);
  if (error) throw error;
  return output.toString('utf8');
}

/** The filter passes these through byte for byte, whatever the chunk boundaries. */
async function expectUnchanged(input: string | Buffer) {
  const bytes = toBuffer(input);
  expect((await feed([bytes])).output.equals(bytes)).toBe(true);
  expect((await feed(bytewise(bytes))).output.equals(bytes)).toBe(true);
}

describe('faithful: honest SQL passes byte for byte', () => {
  it('keeps tables and columns named program, copy and stdin, and their data', async () => {
    await expectUnchanged('CREATE TABLE public.stdin (program text, copy text);\nCOPY public.stdin (program, copy) FROM stdin;\nTO PROGRAM\tx\n\\.\nSELECT 1;\n');
  });

  it('keeps CRLF line ends in function bodies, literals and COPY data', async () => {
    await expectUnchanged("CREATE FUNCTION public.f() RETURNS text\r\n    LANGUAGE sql\r\n    AS $$SELECT 'a\r\nb'$$;\r\nCOPY public.t (a) FROM stdin;\r\nx\r\n\\.\r\n");
  });

  it("keeps E'é\\n' and backslashes after multibyte characters", async () => {
    await expectUnchanged("INSERT INTO t VALUES (E'é\\n', 'é\\', E'日本\\\\');\nSELECT 1;\n");
  });

  it('reads plain literals with backslash escapes when standard_conforming_strings is off', async () => {
    const sql = "SET standard_conforming_strings = off;\nINSERT INTO t VALUES ('a\\';\\nALTER TABLE t OWNER TO x;');\nALTER TABLE t OWNER TO x;\n";
    const out = await filtered(sql);
    // The OWNER TO inside the literal stays; the real statement after it is left out.
    expect(out).toBe("SET standard_conforming_strings = off;\nINSERT INTO t VALUES ('a\\';\\nALTER TABLE t OWNER TO x;');\n\n");
  });

  it('treats $1 as a parameter and $ inside identifiers as part of them', async () => {
    await expectUnchanged('PREPARE p AS SELECT $1;\nSELECT a$b$c FROM t;\nCREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n');
  });

  it("follows psql's BEGIN ATOMIC rule", async () => {
    const sql = 'CREATE FUNCTION public.g() RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT 1;\n UPDATE public.t SET v = 1;\nEND;\n';
    await expectUnchanged(sql);
    // A body statement the rules would leave out at top level is refused: psql sends the body as one
    // query, and a server that ends the body earlier than psql's count runs it on its own.
    expect((await feed([Buffer.from(sql.replace('public.t SET v = 1', 'pg_database SET datname = x'))])).error?.message).toMatch(/joins into one query/);
  });

  it('passes meta-commands other than \\connect, \\restrict and \\unrestrict on to psql, which refuses them', async () => {
    await expectUnchanged('SELECT 1;\n\\! touch /tmp/x\n');
  });

  it('streams a line of any length with bounded memory', async () => {
    const filter = createRestoreFilter(defaults);
    let bytes = 0;
    filter.on('data', (b: Buffer) => (bytes += b.length));
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    const start = process.memoryUsage().rss;
    let peak = start;
    for (let i = 0; i < 200; i++) {
      // 200 MiB of one statement without a newline or a semicolon.
      if (!filter.write(i === 0 ? Buffer.from('CREATE TABLE ') : chunk)) await new Promise((resolve) => filter.once('drain', resolve));
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    filter.end();
    await new Promise((resolve) => filter.on('finish', resolve));
    expect(bytes).toBe(13 + 199 * 1024 * 1024);
    expect(peak - start).toBeLessThan(64 * 1024 * 1024);
  });
});

describe('what the app does itself', () => {
  it('changes a real pg_dump output only where it must, keeping line numbers', async () => {
    const { output, summary } = await feed([databaseDump]);
    const before = databaseDump.toString('utf8').split('\n');
    const after = output.toString('utf8').split('\n');
    expect(after.length).toBe(before.length);
    const changed = before.map((line, i) => [line, after[i]]).filter(([a, b]) => a !== b);
    for (const [line, now] of changed) {
      if (line.startsWith("SELECT pg_catalog.set_config('search_path'")) expect(now).toContain("'pg_catalog, public', true");
      else {
        expect(line).toMatch(/^(\\(un)?restrict |DROP EXTENSION|CREATE EXTENSION|COMMENT ON EXTENSION|ALTER .* OWNER TO )/);
        expect(now).toBe('');
      }
    }
    expect(summary?.extensions).toEqual([{ name: 'pg_trgm', schema: 'public' }]);
    expect(summary?.skipped.owner).toBeGreaterThan(0);
  });

  it('refuses an extension outside the allow-list, naming it', async () => {
    const { error } = await feed([Buffer.from('CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA public;\n')]);
    expect(error).toBeInstanceOf(DisallowedExtensionError);
    expect(error?.message).toContain('"dblink"');
  });

  it('leaves out role statements, decoding U& names', async () => {
    expect(decodeUnicode('\\0070ostgres', '\\')).toBe('postgres');
    const sql = 'ALTER ROLE U&"\\0070ostgres" NOLOGIN;\nCREATE ROLE evil SUPERUSER;\nGRANT pg_execute_server_program TO evil;\nDROP TABLESPACE x;\nCREATE USER MAPPING FOR x SERVER s;\n';
    const { output, summary } = await feed([Buffer.from(sql)]);
    expect(output.toString()).toBe('\n\n\n\nCREATE USER MAPPING FOR x SERVER s;\n');
    expect(summary?.skipped.role).toBe(4);
  });

  it('skips GRANTs to roles this server lacks and lists them; keeps the others', async () => {
    const sql = 'GRANT SELECT ON TABLE public.t TO dashboard_ro;\nGRANT SELECT ON TABLE public.t TO immich_app;\nREVOKE ALL ON SCHEMA public FROM PUBLIC;\nGRANT ALL ON TABLE public.t TO "Dash""Board";\n';
    const { output, summary } = await feed([Buffer.from(sql)]);
    expect(output.toString()).toBe('\nGRANT SELECT ON TABLE public.t TO immich_app;\nREVOKE ALL ON SCHEMA public FROM PUBLIC;\n\n');
    expect(summary?.missingRoles).toEqual(['dashboard_ro', 'Dash"Board']);
  });

  it("leaves out statements that would end or start a transaction (the restore is one transaction of the app's)", async () => {
    const sql = "BEGIN;\nSELECT 1;\nCOMMIT;\nROLLBACK;\nEND;\nABORT;\nSTART TRANSACTION;\nPREPARE TRANSACTION 'x';\nCOMMIT PREPARED 'x';\nPREPARE q AS SELECT 1;\n";
    const { output, summary } = await feed([Buffer.from(sql)]);
    expect(output.toString()).toBe('\nSELECT 1;\n\n\n\n\n\n\n\nPREPARE q AS SELECT 1;\n');
    expect(summary?.skipped.transaction).toBe(8);
    // ROLLBACK TO a savepoint stays inside the transaction, but undoes SETs the lexer follows: refused.
    expect((await feed([Buffer.from('SAVEPOINT a;\nROLLBACK TO SAVEPOINT a;\n')])).error?.message).toMatch(/in a form Lifeboat does not follow/);
  });

  it('leaves out database statements and schemas the app prepared', async () => {
    const sql = 'CREATE DATABASE x;\nALTER DATABASE immich SET search_path = evil;\nCOMMENT ON DATABASE immich IS $$x$$;\nUPDATE pg_catalog.pg_database SET datistemplate = false;\nDROP SCHEMA IF EXISTS vectors;\nCREATE SCHEMA vectors;\nCREATE SCHEMA other;\n';
    expect(await filtered(sql, { preparedSchemas: new Set(['vectors']) })).toBe('\n\n\n\n\n\nCREATE SCHEMA other;\n');
  });

  it('drops the dump\'s \\connect, \\restrict and \\unrestrict lines', async () => {
    expect(await filtered('\\restrict abc\n\\connect immich\nSELECT 1;\n\\unrestrict abc\n')).toBe('\n\nSELECT 1;\n\n');
  });

  it('gives the same output whatever the chunk boundaries', async () => {
    const whole = await feed([databaseDump]);
    const small = await feed(bytewise(databaseDump.subarray(0, 4000)).concat([databaseDump.subarray(4000)]));
    expect(small.output.equals(whole.output)).toBe(true);
  });

  it('finds the extensions in the head of a dump and stops reading early', async () => {
    let read = 0;
    const big = Buffer.concat([databaseDump, Buffer.alloc(8 * 1024 * 1024, '\n')]);
    const input = Readable.from((function* () {
      for (let i = 0; i < big.length; i += 65536) {
        read += Math.min(65536, big.length - i);
        yield big.subarray(i, i + 65536);
      }
    })());
    const { extensions } = await scanDumpHead(input, defaults);
    expect(extensions).toEqual([{ name: 'pg_trgm', schema: 'public' }]);
    expect(read).toBeLessThan(big.length / 2);
  });
});

describe('cluster dumps (pg_dumpall)', () => {
  it('keeps only the section of the instance database, with the same line numbers', async () => {
    const { output, error } = await feed([clusterDump]);
    expect(error).toBeUndefined();
    const out = output.toString();
    expect(out.split('\n').length).toBe(clusterDump.toString().split('\n').length);
    expect(out).not.toMatch(/CREATE ROLE/);
    expect(out).toMatch(/CREATE TABLE/);
  });

  it('restores the only database of a dump made under another name, and says so', async () => {
    const notices: string[] = [];
    const several = await feed([clusterDump], { databaseName: 'photos' });
    expect(several.error?.message).toMatch(/no database "photos" and several others \("immich", "other"\)/);
    const onlyImmich = Buffer.from(clusterDump.toString().replace('DROP DATABASE IF EXISTS other;\n', '\n'));
    const { error, output } = await feed([onlyImmich], { databaseName: 'photos', onNotice: (m) => notices.push(m) });
    expect(error).toBeUndefined();
    expect(notices.join()).toMatch(/no database "photos"; restoring its only database "immich"/);
    expect(output.toString()).toMatch(/CREATE TABLE/);
  });

  it('fails at the end when the dump has no section for the database', async () => {
    const dump = '--\n-- PostgreSQL database cluster dump\n--\n\nCREATE ROLE x;\n--\n-- Database "other" dump\n--\n\\connect other\nCREATE TABLE t (a int);\n';
    const { error } = await feed([Buffer.from(dump)]);
    expect(error?.message).toMatch(/no section for the database "immich" \(it contains "other"\)/);
  });
});

describe('freezeCopies: rows of tables the load creates are written frozen', () => {
  const freeze = { freezeCopies: true };
  const frozenText = async (input: string) => {
    const out = await filtered(input, freeze);
    // Same bytes in chunks of one: the rewrite does not depend on where a chunk ends.
    expect((await feed(bytewise(Buffer.from(input)), freeze)).output.toString('utf8')).toBe(out);
    expect(out.split('\n').length, 'line numbers stay the dump\'s').toBe(input.split('\n').length);
    return out;
  };

  it('adds FREEZE to the COPY of a table created earlier in the stream, keeping its data', async () => {
    const dump = 'CREATE TABLE public.assets (\n    id uuid,\n    "from" text\n);\nCOPY public.assets (id, "from") FROM stdin;\nx\tCOPY public.assets (id) FROM stdin;\n\\.\nCREATE UNLOGGED TABLE IF NOT EXISTS "Odd"."t;x" (v text);\nCOPY "Odd"."t;x" (v) FROM stdin;\n\\.\n';
    const out = await frozenText(dump);
    expect(out).toBe(dump.replace('FROM stdin;\nx', 'FROM stdin WITH (FREEZE);\nx').replace('(v) FROM stdin;', '(v) FROM stdin WITH (FREEZE);'));
  });

  it('leaves every other COPY as it is', async () => {
    const cases = [
      // Not created in this stream (a table the load did not make: FREEZE would fail).
      'CREATE TABLE public.a (v text);\nCOPY public.b (v) FROM stdin;\n\\.\n',
      // Unqualified: another search path could make it another table.
      'CREATE TABLE a (v text);\nCOPY a (v) FROM stdin;\n\\.\n',
      // Partitioned tables and partitions (COPY FREEZE refuses a partitioned table).
      'CREATE TABLE public.p (v int) PARTITION BY RANGE (v);\nCOPY public.p (v) FROM stdin;\n\\.\n',
      'CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES FROM (0) TO (9);\nCOPY public.p1 (v) FROM stdin;\n\\.\n',
      // Temporary tables, a CREATE TABLE inside a function body, options of the dump's own.
      'CREATE TEMP TABLE public.t (v text);\nCOPY public.t (v) FROM stdin;\n\\.\n',
      "CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $$CREATE TABLE public.t (v text)$$;\nCOPY public.t (v) FROM stdin;\n\\.\n",
      // Not pg_dump's exact ending (see freezeCopy).
      'CREATE TABLE public.t (v text);\nCOPY public.t (v)\nFROM STDIN ;\n\\.\n',
      // A name PostgreSQL would cut to 63 bytes.
      `CREATE TABLE public.${'a'.repeat(64)} (v text);\nCOPY public.${'a'.repeat(64)} (v) FROM stdin;\n\\.\n`,
      // A COPY that is data of another COPY is data.
      'CREATE TABLE public.t (v text);\nCOPY public.u (v) FROM stdin;\nCOPY public.t (v) FROM stdin;\n\\.\n',
    ];
    for (const dump of cases) expect(await frozenText(dump), dump).toBe(dump);
    // Options after stdin: psql reads rows where the lexer cannot tell, so the dump is refused.
    await expect(frozenText('CREATE TABLE public.t (v text);\nCOPY public.t (v) FROM stdin WITH (FORMAT text);\n\\.\n')).rejects.toThrow(/options after stdin/);
  });

  it('is off unless asked for', async () => {
    await expectUnchanged('CREATE TABLE public.t (v text);\nCOPY public.t (v) FROM stdin;\nx\n\\.\n');
  });

  it('in a cluster dump, in the section of the instance database', async () => {
    const out = await filtered(clusterDump, freeze);
    const plain = await filtered(clusterDump);
    expect(out).not.toBe(plain);
    expect(out.replaceAll(' WITH (FREEZE);', ';')).toBe(plain);
    // The instance database's two tables; the other databases' sections are left out as before.
    expect(out.match(/ WITH \(FREEZE\);/g)).toHaveLength(2);
  });
});
