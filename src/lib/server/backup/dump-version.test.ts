import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { DumpVersionCache, readDumpFileVersion, readDumpVersion, valueLists } from './dump-version';

const HEAD = `--
-- PostgreSQL database dump
--

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

CREATE TABLE public.migrations (
    name character varying NOT NULL,
    version character varying NOT NULL,
    executed_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE FUNCTION public.decoy() RETURNS text LANGUAGE sql AS $$ SELECT '
COPY public.migrations (name, version, executed_at) FROM stdin;
9000000000000-Decoy	9.0.0	2024-01-01
\\.
' $$;
`;

const assets = (n: number) => `COPY public.assets (id, original_path) FROM stdin;\n${Array.from({ length: n }, (_, i) => `${i}\tupload/COPY public.migrations (name) FROM stdin;`).join('\n')}\n\\.\n\n`;

const migrations = (...rows: string[]) => `COPY public.migrations (name, version, executed_at) FROM stdin;\n${rows.map((r) => `${r}\t2024-01-05 10:15:00+00`).join('\n')}\n\\.\n\n`;

const V100 = '1000000000000-InitialSchema\t1.0.0';
const V110 = '1100000000000-Albums\t1.1.0';

/** Feeds the text in chunks of `size` bytes and counts how many were taken. */
async function read(text: string, size = 7, databaseName = 'immich'): Promise<{ version: string | null; taken: number; chunks: number }> {
  const bytes = Buffer.from(text);
  let taken = 0;
  const chunks = Math.ceil(bytes.length / size);
  async function* source() {
    for (let i = 0; i < bytes.length; i += size) {
      taken++;
      yield bytes.subarray(i, i + size);
    }
  }
  return { version: await readDumpVersion(source(), { databaseName }), taken, chunks };
}

describe('readDumpVersion', () => {
  it('reads the newest migration of the migrations block, past big data blocks and decoys inside strings', async () => {
    for (const size of [1, 5, 64, 100_000]) {
      const { version } = await read(HEAD + assets(50) + migrations(V100, V110) + 'COPY public.users (id) FROM stdin;\n1\n\\.\n', size);
      expect(version, `chunks of ${size}`).toBe('1.1.0');
    }
  });

  it('stops reading right after the migrations block', async () => {
    const tail = assets(2000);
    const { version, taken, chunks } = await read(HEAD + migrations(V100) + tail, 64);
    expect(version).toBe('1.0.0');
    expect(taken).toBeLessThan(chunks / 10);
  });

  it('tells an older schema, a newer one and none', async () => {
    expect((await read(HEAD + migrations(V100))).version).toBe('1.0.0');
    expect((await read(HEAD + migrations(V100, V110, '1200000000000-Faces\t1.2.0'))).version).toBe('1.2.0');
    expect((await read(HEAD + assets(3))).version).toBeNull();
    expect((await read(HEAD + migrations())).version).toBeNull();
    expect((await read('hello, this is not a dump\n')).version).toBeNull();
    expect((await read('')).version).toBeNull();
  });

  it('knows a migration by its name when the table has no version column', async () => {
    const text = `COPY public.migrations (name) FROM stdin;\n1000000000000-InitialSchema\n1100000000000-Albums\n\\.\n`;
    expect((await read(text)).version).toBe('1.1.0');
    expect((await read(`COPY public.migrations (name) FROM stdin;\nsomething-else\n\\.\n`)).version).toBeNull();
  });

  it("falls back to system_metadata's version-history", async () => {
    const text = `COPY public.system_metadata (key, value) FROM stdin;\nsystem-config\t{"backup": {}}\nversion-history\t[{"version": "1.0.0", "createdAt": "x"}, {"version": "1.1.0", "createdAt": "y"}]\n\\.\n`;
    expect((await read(text)).version).toBe('1.1.0');
  });

  it('reads pg_dump --inserts and --column-inserts', async () => {
    const inserts = `INSERT INTO public.migrations VALUES ('1000000000000-InitialSchema', '1.0.0', '2024-01-05');\nINSERT INTO public.migrations VALUES ('1100000000000-Albums', '1.1.0', '2024-01-06');\nINSERT INTO public.users VALUES (1);\n`;
    expect((await read(inserts)).version).toBe('1.1.0');
    const columns = `INSERT INTO public.migrations (executed_at, version, name) VALUES ('2024-01-05', '1.0.0', 'x'), (NULL, '1.0.1', 'it''s');\n`;
    expect((await read(columns)).version).toBe('1.0.1');
    expect(valueLists(`('a', NULL, 'b''c', '{"x": 1}'::jsonb), (2, 'z');`)).toEqual([
      ['a', null, "b'c", '{"x": 1}'],
      ['2', 'z'],
    ]);
  });

  it("of a pg_dumpall dump, reads only the instance database's section", async () => {
    const section = (name: string, rows: string) => `--\n-- Database "${name}" dump\n--\n\n\\connect ${name}\n\n${rows}`;
    const cluster = `--\n-- PostgreSQL database cluster dump\n--\n\nSET default_transaction_read_only = off;\n\nCREATE ROLE postgres;\n\n${section('other', migrations('x\t9.9.9'))}${section('immich', migrations(V100))}`;
    expect((await read(cluster, 11, 'immich')).version).toBe('1.0.0');
    expect((await read(cluster, 11, 'absent')).version).toBeNull();
    // pg_dumpall 15.14 and later write \restrict lines around the header.
    const restricted = `\\restrict abc\n${cluster}\\unrestrict abc\n`;
    expect((await read(restricted, 11, 'immich')).version).toBe('1.0.0');
  });
});

describe('readDumpFileVersion and its cache', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dump-version-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads plain and gzip files; a damaged archive tells nothing', async () => {
    const text = HEAD + migrations(V100, V110);
    writeFileSync(join(dir, 'a.sql'), text);
    writeFileSync(join(dir, 'a.sql.gz'), gzipSync(text));
    writeFileSync(join(dir, 'bad.sql.gz'), gzipSync(text).subarray(0, 40));
    expect(await readDumpFileVersion(join(dir, 'a.sql'), { databaseName: 'immich' })).toBe('1.1.0');
    expect(await readDumpFileVersion(join(dir, 'a.sql.gz'), { databaseName: 'immich' })).toBe('1.1.0');
    expect(await readDumpFileVersion(join(dir, 'bad.sql.gz'), { databaseName: 'immich' })).toBeNull();
  });

  it('reads a file once per name, size and modification time, and again when it is replaced', async () => {
    const path = join(dir, 'c.sql');
    writeFileSync(path, HEAD + migrations(V100));
    let reads = 0;
    const cache = new DumpVersionCache('immich', (p, o) => {
      reads++;
      return readDumpFileVersion(p, o);
    });
    const [one, two] = await Promise.all([cache.versionOf(path), cache.versionOf(path)]);
    expect([one, two, await cache.versionOf(path), reads]).toEqual(['1.0.0', '1.0.0', '1.0.0', 1]);
    writeFileSync(path, HEAD + migrations(V100, V110));
    const later = new Date(statSync(path).mtimeMs + 5000);
    utimesSync(path, later, later);
    expect(await cache.versionOf(path)).toBe('1.1.0');
    expect(reads).toBe(2);
    // A file that says nothing is not read again either.
    const none = join(dir, 'none.sql');
    writeFileSync(none, 'no schema here\n');
    expect([await cache.versionOf(none), await cache.versionOf(none), reads]).toEqual([null, null, 3]);
    // A read that failed is tried again.
    const failing = new DumpVersionCache('immich', async () => {
      reads++;
      throw new Error('EIO');
    });
    expect([await failing.versionOf(none), await failing.versionOf(none), reads]).toEqual([null, null, 5]);
  });
});
