// The restore's inflater: igzip for a file zlib verified whole, and nothing committed unless the
// bytes read were that file and igzip exited cleanly (it checks the CRC after writing its output).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRestoreFilter, DisallowedExtensionError } from '../src/lib/server/dump-filter';
import { restorePsqlFor } from '../src/lib/server/db/pg-binaries';
import { findIgzip } from '../src/lib/server/process/igzip';
import { DumpReadError, prelude, PsqlError, RestoreRepository } from '../src/lib/server/repositories/restore.repository';
import { ALLOWED_EXTENSIONS } from '../src/lib/server/restore/extensions';
import { connectionFor, createDatabase, dropDatabase, withClient } from './helpers/pg';

const DUMP = `--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);

CREATE TABLE public.inflated (id integer NOT NULL, note text);

COPY public.inflated (id, note) FROM stdin;
${Array.from({ length: 5000 }, (_, i) => `${i}\tnote ${i}`).join('\n')}
\\.

--
-- PostgreSQL database dump complete
--

`;

/** A dump of several MiB (the pipes' buffers are 1 MiB), whose text after the rows is `after`. */
const bigDump = (after: string) => `--
-- PostgreSQL database dump
--

SET client_encoding = 'UTF8';

CREATE TABLE public.inflated (id integer NOT NULL, note text);

COPY public.inflated (id, note) FROM stdin;
${Array.from({ length: 200_000 }, (_, i) => `${i}\tnote ${i} ${'x'.repeat(i % 50)}`).join('\n')}
\\.

${after}
ALTER TABLE ONLY public.inflated ADD CONSTRAINT inflated_pkey PRIMARY KEY (id);

--
-- PostgreSQL database dump complete
--

`;

const igzip = findIgzip('auto');
let dir: string;
let good: string;
let badCrc: string;
let database: string;
let psql: string;

beforeAll(async () => {
  expect(igzip, 'igzip is not installed (Debian: apt-get install isal)').not.toBeNull();
  dir = mkdtempSync(join(tmpdir(), 'lifeboat-inflate-'));
  writeFileSync(join(dir, 'dump.sql'), DUMP);
  good = join(dir, 'good.sql.gz');
  writeFileSync(good, execFileSync(igzip!, ['-1', '-c', join(dir, 'dump.sql')]));
  // The same member with its CRC-32 changed: every byte of text comes out, then igzip fails.
  const bytes = readFileSync(good);
  bytes[bytes.length - 8] ^= 0xff;
  badCrc = join(dir, 'bad-crc.sql.gz');
  writeFileSync(badCrc, bytes);
  psql = await restorePsqlFor((await withClient('postgres', (c) => c.query('SHOW server_version'))).rows[0].server_version);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const openFds = () => readdirSync('/proc/self/fd').length;
const latin1 = (text: string) => Buffer.from(text, 'latin1');

/** A verified igzip file of `text`, as a restore gets it. */
function verifiedFile(name: string, text: string | Buffer) {
  writeFileSync(join(dir, `${name}.sql`), text);
  const path = join(dir, `${name}.sql.gz`);
  writeFileSync(path, execFileSync(igzip!, ['-1', '-c', join(dir, `${name}.sql`)], { maxBuffer: 64 * 1024 * 1024 }));
  return { path, expectFile: { sha256: sha(path), size: readFileSync(path).length, verified: true, error: 'not this file' } };
}

async function load(path: string, expectFile: { sha256: string; size: number; verified: boolean; error: string }, options: { signal?: AbortSignal; file?: FileHandle } = {}) {
  database = await createDatabase('inflate');
  const { user } = connectionFor(database);
  return new RestoreRepository().loadDump({
    psql,
    connection: connectionFor(database),
    path,
    compressed: true,
    prelude: prelude('staged'),
    filter: createRestoreFilter({ databaseName: database, existingRoles: new Set([user]), allowedExtensions: ALLOWED_EXTENSIONS }),
    expectFile,
    igzip,
    ...options,
  });
}

async function rows(): Promise<number | null> {
  return withClient(database, async (client) => {
    const { rows } = await client.query("SELECT to_regclass('public.inflated') AS t");
    if (!rows[0].t) return null;
    return Number((await client.query('SELECT count(*) AS n FROM public.inflated')).rows[0].n);
  });
}

describe('the restore inflates a verified file with igzip, and commits only what it proved', () => {
  it('loads a verified file through igzip', async () => {
    try {
      await load(good, { sha256: sha(good), size: readFileSync(good).length, verified: true, error: 'not this file' });
      expect(await rows()).toBe(5000);
    } finally {
      await dropDatabase(database);
    }
  });

  it('a CRC that igzip finds wrong at the end of the member: nothing is committed (its exit, or the missing end, stops the COMMIT)', async () => {
    try {
      const error = await load(badCrc, { sha256: sha(badCrc), size: readFileSync(badCrc).length, verified: true, error: 'not this file' }).catch((e) => e);
      expect(error).toBeInstanceOf(DumpReadError);
      expect(String(error.message)).toMatch(/damaged.*igzip|does not end with the "PostgreSQL database dump complete" line/);
      expect(await rows()).toBeNull();
    } finally {
      await dropDatabase(database);
    }
  });

  it('bytes that are not the manifest\'s file: nothing is committed, with the caller\'s reason', async () => {
    try {
      const error = await load(good, { sha256: '0'.repeat(64), size: readFileSync(good).length, verified: true, error: 'not the file its manifest describes' }).catch((e) => e);
      expect(String(error?.message)).toMatch(/not the file its manifest describes/);
      expect(await rows()).toBeNull();
    } finally {
      await dropDatabase(database);
    }
  });

  it('an unverified file is inflated by zlib, which refuses the bad CRC itself', async () => {
    try {
      const error = await load(badCrc, { sha256: sha(badCrc), size: readFileSync(badCrc).length, verified: false, error: 'not this file' }).catch((e) => e);
      expect(error).toBeInstanceOf(DumpReadError);
      expect(String(error.message)).not.toMatch(/igzip/);
      expect(await rows()).toBeNull();
    } finally {
      await dropDatabase(database);
    }
  });

  it('a dump of several MiB loads whole, every row, and leaves no descriptor open', async () => {
    const { path, expectFile } = verifiedFile('big', bigDump(''));
    const before = openFds();
    try {
      await load(path, expectFile);
      expect(await rows()).toBe(200_000);
      const sum = await withClient(database, async (client) => (await client.query("SELECT sum(id)::text AS s, sum(length(note))::text AS l FROM public.inflated")).rows[0]);
      expect(sum.s).toBe(String((199_999 * 200_000) / 2));
      expect(Number(sum.l)).toBe(Array.from({ length: 200_000 }, (_, i) => `note ${i} ${'x'.repeat(i % 50)}`.length).reduce((a, b) => a + b, 0));
      expect(openFds()).toBe(before);
    } finally {
      await dropDatabase(database);
    }
  });

  it('psql stopping on an error after MiBs of rows: nothing is committed, psql\'s error is the reason, no descriptor is left', async () => {
    const { path, expectFile } = verifiedFile('sql-error', bigDump('SELECT no_such_function();\n'));
    const before = openFds();
    try {
      const error = await load(path, expectFile).catch((e) => e);
      expect(error).toBeInstanceOf(PsqlError);
      expect(String(error.message)).toMatch(/no_such_function/);
      expect(await rows()).toBeNull();
      expect(openFds()).toBe(before);
    } finally {
      await dropDatabase(database);
    }
  });

  it('the filter refusing a statement after MiBs of rows: nothing is committed, no descriptor is left', async () => {
    const { path, expectFile } = verifiedFile('refused', bigDump('CREATE EXTENSION dblink;\n'));
    const before = openFds();
    try {
      const error = await load(path, expectFile).catch((e) => e);
      expect(error).toBeInstanceOf(DisallowedExtensionError);
      expect(await rows()).toBeNull();
      expect(openFds()).toBe(before);
    } finally {
      await dropDatabase(database);
    }
  });

  it('a restore cancelled while rows stream: nothing is committed, no descriptor is left', async () => {
    const { path, expectFile } = verifiedFile('cancelled', bigDump('SELECT pg_sleep(30);\n'));
    const before = openFds();
    const controller = new AbortController();
    try {
      const loading = load(path, expectFile, { signal: controller.signal }).catch((e) => e);
      // pg_sleep after the rows: the load is underway, its COMMIT far off.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      controller.abort();
      const error = await loading;
      expect(error).toBeInstanceOf(Error);
      expect(await rows()).toBeNull();
      expect(openFds()).toBe(before);
    } finally {
      await dropDatabase(database);
    }
  });

  it('a read of the file that fails halfway is reported as such, not as a damaged backup; nothing is committed', async () => {
    const { path, expectFile } = verifiedFile('read-fails', bigDump(''));
    const bytes = readFileSync(path);
    // The disk (or a network mount) fails after half the file: igzip then sees a cut gzip, but the cause is the read.
    const failingFile = {
      createReadStream: () =>
        Readable.from(
          (async function* () {
            yield bytes.subarray(0, bytes.length >> 1);
            throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
          })(),
        ),
    } as unknown as FileHandle;
    try {
      const error = await load(path, expectFile, { file: failingFile }).catch((e) => e);
      expect(error).not.toBeInstanceOf(DumpReadError);
      expect(error?.code).toBe('EIO');
      expect(await rows()).toBeNull();
    } finally {
      await dropDatabase(database);
    }
  });

  it('without a usable temporary folder for its pipes, the load goes through streams and still loads', async () => {
    const tmp = process.env.TMPDIR;
    process.env.TMPDIR = join(dir, 'no-such-folder');
    try {
      await load(good, { sha256: sha(good), size: readFileSync(good).length, verified: true, error: 'not this file' });
      expect(await rows()).toBe(5000);
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
      await dropDatabase(database);
    }
  });
});

describe('through the pipes (a verified file igzip inflates): honest text arrives byte-exact, hostile text after MiBs of rows changes nothing', () => {
  // Rows of 1-, 2-, 3- and 4-byte characters and COPY escapes: the 1 MiB buffers end inside characters and escapes.
  const honestRows = Array.from({ length: 60_000 }, (_, i) => `${i}\tcafé 日本語 🎞️ \\\\ \\t ${'ü'.repeat(i % 7)};COMMIT;--`).join('\n') + '\n';
  const honest = `--
-- PostgreSQL database dump
--

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

CREATE TABLE public."select" (id integer NOT NULL, "end" text);
CREATE FUNCTION public."begin"() RETURNS text LANGUAGE plpgsql AS $body$ BEGIN RETURN 'x; COMMIT; $not$ end'; END $body$;
CREATE TABLE public.notes (note text);
INSERT INTO public.notes VALUES (E'it\\'s; COMMIT; --'), ('日本語 $$ ; END;');

COPY public."select" (id, "end") FROM stdin;
${honestRows}\\.

--
-- PostgreSQL database dump complete
--

`;

  it('an honest dump with keyword names, strings, dollar quotes and multibyte rows round-trips byte-exact', async () => {
    const { path, expectFile } = verifiedFile('honest-pipes', honest);
    try {
      await load(path, expectFile);
      const copied = await withClient(database, async (client) => {
        const { rows } = await client.query(`SELECT string_agg(id || E'\\t' || replace(replace("end", E'\\\\', E'\\\\\\\\'), E'\\t', E'\\\\t'), E'\\n' ORDER BY id) || E'\\n' AS text FROM public."select"`);
        return rows[0].text as string;
      });
      // Byte-exact (digests: comparing 3 MB buffers element by element takes the test runner seconds).
      const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
      expect({ bytes: Buffer.byteLength(copied), sha256: digest(copied) }).toEqual({ bytes: Buffer.byteLength(honestRows), sha256: digest(honestRows) });
      const other = await withClient(database, async (client) => ({
        notes: (await client.query('SELECT note FROM public.notes ORDER BY note')).rows.map((r) => r.note),
        fn: (await client.query('SELECT public."begin"() AS v')).rows[0].v,
      }));
      expect(other).toEqual({ notes: ["it's; COMMIT; --", '日本語 $$ ; END;'], fn: 'x; COMMIT; $not$ end' });
    } finally {
      await dropDatabase(database);
    }
  });

  it.each([
    // The server refuses transaction control in a DO block run inside the app's transaction.
    ['a DO block whose dynamic SQL commits', latin1(`DO $$ BEGIN EXECUTE 'COMMIT'; END $$;\nCREATE TABLE public.after (x int);\n`)],
    // psql reads a dollar tag of SJIS characters masked; the filter refuses what it cannot read as psql does.
    ['an SJIS dollar tag hiding a COMMIT', Buffer.concat([latin1("SET client_encoding = 'SJIS';\nSELECT $"), Buffer.from([0x81, 0x40]), latin1("$ ' $"), Buffer.from([0x81, 0x40]), latin1('$;\nCOMMIT;\nCREATE TABLE public.after (x int);\n')])],
    ['a table named commit and a statement END after it', latin1('CREATE TABLE public."commit" (x int);\nEND;\nCREATE TABLE public.after (x int);\n')],
  ])('%s, after MiBs of rows: refused or rolled back, nothing committed', async (_name, hostile) => {
    // The dump fails at its end: a COMMIT that ran earlier (hidden from the filter, or an END taken as one) would keep what came before.
    const ending = latin1('SELECT 1/0;\n\n--\n-- PostgreSQL database dump complete\n--\n\n');
    const text = Buffer.concat([Buffer.from(bigDump('').replace(/\n--\n-- PostgreSQL database dump complete[\s\S]*$/, '\n')), hostile, ending]);
    const { path, expectFile } = verifiedFile('hostile-pipes', text);
    try {
      const error = await load(path, expectFile).catch((e) => e);
      expect(error).toBeInstanceOf(Error);
      expect(await rows()).toBeNull();
      const tables = await withClient(database, async (client) => (await client.query(`SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace`)).rows[0].n);
      expect(tables).toBe(0);
    } finally {
      await dropDatabase(database);
    }
  });
});
