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

/** A verified igzip file of `text`, as a restore gets it. */
function verifiedFile(name: string, text: string) {
  writeFileSync(join(dir, `${name}.sql`), text);
  const path = join(dir, `${name}.sql.gz`);
  writeFileSync(path, execFileSync(igzip!, ['-1', '-c', join(dir, `${name}.sql`)], { maxBuffer: 64 * 1024 * 1024 }));
  return { path, expectFile: { sha256: sha(path), size: readFileSync(path).length, verified: true, error: 'not this file' } };
}

async function load(path: string, expectFile: { sha256: string; size: number; verified: boolean; error: string }, signal?: AbortSignal) {
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
    signal,
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
      const loading = load(path, expectFile, controller.signal).catch((e) => e);
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
    database = await createDatabase('inflate');
    try {
      const { user } = connectionFor(database);
      const error = await new RestoreRepository()
        .loadDump({
          psql,
          connection: connectionFor(database),
          path,
          file: failingFile,
          compressed: true,
          prelude: prelude('staged'),
          filter: createRestoreFilter({ databaseName: database, existingRoles: new Set([user]), allowedExtensions: ALLOWED_EXTENSIONS }),
          expectFile,
          igzip,
        })
        .catch((e) => e);
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
