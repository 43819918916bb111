import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidDumpError, inspectDumpFile, sniffDumpHeader, verifyGzipFile } from './dump-sniff';
import { createParallelGzip } from './parallel-gzip';

// Verbatim beginnings of `pg_dump` and `pg_dumpall` 15.18 output (15.14+ adds \restrict).
const PG_DUMP = `--
-- PostgreSQL database dump
--

\\restrict ydVT7vT7lIXcEHsb6KIKVZoech18RzrqNf41xRgHGQVpshHyAbqgGf0A5AzaWTW

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: asset; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.asset (
    id uuid NOT NULL,
    "originalPath" character varying NOT NULL
);


ALTER TABLE public.asset OWNER TO postgres;

--
-- Data for Name: asset; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.asset (id, "originalPath") FROM stdin;
95e95eeb-ee00-4a38-8c8f-02bd9ef33121	upload/upload/5b0f3c1e-4c52-4f0e-9a4d-0e1f2b3c4d5e/95/e9/95e95eeb-ee00-4a38-8c8f-02bd9ef33121.jpg
\\.
`;

const PG_DUMPALL = `--
-- PostgreSQL database cluster dump
--

\\restrict rQ0O58luHtiCMH8F0ejGq9KdJIsB9OnaDSaCwbczAxmfgeElg0M4Smn91gdZx7J

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;

\\unrestrict rQ0O58luHtiCMH8F0ejGq9KdJIsB9OnaDSaCwbczAxmfgeElg0M4Smn91gdZx7J

--
-- Databases
--

--
-- Database "template1" dump
--

\\connect template1

${PG_DUMP}`;

const withoutRestrict = (text: string) => text.replace(/^\\(un)?restrict .*\n\n/gm, '');
const crlf = (text: string) => text.replace(/\n/g, '\r\n');
// From the first statement on: what is left when someone trims the comment header by hand.
const fromFirstStatement = (text: string) => text.slice(text.indexOf('SET '));

// A large, poorly compressible dump, so its gzip is far bigger than the 64 KiB that inspection reads.
const BIG_DUMP = PG_DUMP + Array.from({ length: 40_000 }, () => `${randomBytes(16).toString('hex')}\t${randomBytes(24).toString('base64')}\n`).join('');

describe('sniffDumpHeader', () => {
  it.each([
    ['pg_dump 15.18', PG_DUMP],
    ['pg_dump before \\restrict existed', withoutRestrict(PG_DUMP)],
    ['\\restrict before the header', `\\restrict abc123\n${withoutRestrict(PG_DUMP)}`],
    ['CRLF line endings', crlf(PG_DUMP)],
    ['a UTF-8 byte order mark', `\uFEFF${PG_DUMP}`],
    ['a BOM and CRLF', `\uFEFF${crlf(withoutRestrict(PG_DUMP))}`],
    ['a hand-trimmed dump starting at SET statement_timeout', fromFirstStatement(PG_DUMP)],
    ['a dump starting at the search_path set_config', PG_DUMP.slice(PG_DUMP.indexOf('SELECT pg_catalog'))],
  ])('recognises a database dump: %s', (_name, head) => {
    expect(sniffDumpHeader(head)).toBe('database');
  });

  it.each([
    ['pg_dumpall 15.18', PG_DUMPALL],
    ['pg_dumpall before \\restrict existed', withoutRestrict(PG_DUMPALL)],
    ['CRLF line endings', crlf(PG_DUMPALL)],
    ['a hand-trimmed cluster dump', fromFirstStatement(PG_DUMPALL)],
  ])('recognises a cluster dump: %s', (_name, head) => {
    expect(sniffDumpHeader(head)).toBe('cluster');
  });

  it.each([
    ['empty text', ''],
    ['random bytes', randomBytes(4096).toString('latin1')],
    ['random bytes as UTF-8', randomBytes(4096).toString('utf8')],
    ['a PNG', '\x89PNG\r\n\x1a\n\0\0\0\rIHDR'],
    ['some other SQL script', '-- migrate users\nDROP TABLE users;\n'],
    ['a SET that pg_dump does not write first', 'SET search_path = public;\nDELETE FROM asset;\n'],
    ['only comments', '--\n-- Just notes\n--\n'],
    ['the dump trailer alone', '--\n-- PostgreSQL database dump complete\n--\n'],
    ['JSON', '{"kind": "PostgreSQL database dump"}'],
  ])('rejects %s', (_name, head) => {
    expect(sniffDumpHeader(head)).toBeNull();
  });
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dump-sniff-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, content: string | Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

async function parallelGzip(text: string): Promise<Buffer> {
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out.push(chunk);
      callback();
    },
  });
  // Small members, so the 64 KiB head spans many of them.
  await pipeline(Readable.from([Buffer.from(text)]), createParallelGzip({ chunkSize: 8192 }), sink);
  return Buffer.concat(out);
}

describe('inspectDumpFile', () => {
  it('accepts a plain SQL dump', async () => {
    expect(await inspectDumpFile(await file('plain.sql', PG_DUMP))).toEqual({ compressed: false, kind: 'database' });
  });

  it('accepts a gzipped database dump', async () => {
    expect(await inspectDumpFile(await file('db.sql.gz', gzipSync(PG_DUMP)))).toEqual({ compressed: true, kind: 'database' });
  });

  it('accepts a multi-member gzip as written by createParallelGzip', async () => {
    const path = await file('parallel.sql.gz', await parallelGzip(BIG_DUMP));
    expect(await inspectDumpFile(path)).toEqual({ compressed: true, kind: 'database' });
  });

  it('detects a cluster dump by content, not by name', async () => {
    expect(await inspectDumpFile(await file('database.sql.gz', gzipSync(PG_DUMPALL)))).toEqual({ compressed: true, kind: 'cluster' });
    expect(await inspectDumpFile(await file('cluster-all.sql.gz', gzipSync(PG_DUMP)))).toEqual({ compressed: true, kind: 'database' });
  });

  it('detects gzip by its magic bytes even without a .gz name', async () => {
    expect(await inspectDumpFile(await file('upload.bin', gzipSync(PG_DUMP)))).toEqual({ compressed: true, kind: 'database' });
  });

  it('reads only the beginning of a large archive', async () => {
    const gz = gzipSync(BIG_DUMP);
    expect(gz.length).toBeGreaterThan(1024 * 1024);
    // The tail is lost, so decompressing the whole file would fail.
    const path = await file('truncated-tail.sql.gz', gz.subarray(0, gz.length / 2));
    expect(await inspectDumpFile(path)).toEqual({ compressed: true, kind: 'database' });
  });

  it('rejects a text file named .gz', async () => {
    const path = await file('dump.sql.gz', PG_DUMP);
    await expect(inspectDumpFile(path)).rejects.toThrow(InvalidDumpError);
    await expect(inspectDumpFile(path)).rejects.toThrow(/not a valid gzip archive/);
  });

  it('rejects a gzip whose beginning cannot be decompressed', async () => {
    const gz = gzipSync(BIG_DUMP);
    const corrupt = Buffer.concat([gz.subarray(0, 10), randomBytes(4096)]);
    await expect(inspectDumpFile(await file('corrupt.sql.gz', corrupt))).rejects.toThrow(/not a valid gzip archive/);
    await expect(inspectDumpFile(await file('stub.sql.gz', gz.subarray(0, 40)))).rejects.toThrow(/not a valid gzip archive/);
  });

  it('rejects a gzip of something that is not a dump', async () => {
    const png = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), randomBytes(100_000)]);
    const path = await file('photo.sql.gz', gzipSync(png));
    await expect(inspectDumpFile(path)).rejects.toThrow(InvalidDumpError);
    await expect(inspectDumpFile(path)).rejects.toThrow(/does not look like a PostgreSQL dump/);
  });

  it('rejects plain text that is not a dump, and an empty file', async () => {
    await expect(inspectDumpFile(await file('notes.sql', 'SELECT 1;\n'))).rejects.toThrow(/does not look like a PostgreSQL dump/);
    await expect(inspectDumpFile(await file('empty.sql', ''))).rejects.toThrow(InvalidDumpError);
  });
});

describe('verifyGzipFile', () => {
  it('accepts an intact archive and reports progress up to its size', async () => {
    const gz = await parallelGzip(BIG_DUMP);
    const path = await file('intact.sql.gz', gz);
    const progress: Array<[number, number]> = [];
    await verifyGzipFile(path, (read, total) => progress.push([read, total]));
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toEqual([gz.length, gz.length]);
  });

  it('rejects an archive truncated in the middle', async () => {
    const gz = gzipSync(BIG_DUMP);
    const path = await file('truncated.sql.gz', gz.subarray(0, Math.floor(gz.length / 2)));
    await expect(verifyGzipFile(path)).rejects.toThrow(InvalidDumpError);
  });

  it('rejects a multi-member archive cut inside a member', async () => {
    const gz = await parallelGzip(BIG_DUMP);
    const path = await file('truncated-parallel.sql.gz', gz.subarray(0, gz.length - 100));
    await expect(verifyGzipFile(path)).rejects.toThrow(/not a valid gzip archive/);
  });

  it('rejects an archive with a corrupted byte', async () => {
    const gz = Buffer.from(gzipSync(BIG_DUMP));
    gz[Math.floor(gz.length / 2)] ^= 0xff;
    await expect(verifyGzipFile(await file('flipped.sql.gz', gz))).rejects.toThrow(InvalidDumpError);
  });

  it('rejects a file that is not gzip at all', async () => {
    await expect(verifyGzipFile(await file('plain-named.sql.gz', PG_DUMP))).rejects.toThrow(InvalidDumpError);
  });

  it('lets a missing file fail as a read error', async () => {
    const error = await verifyGzipFile(join(dir, 'missing.sql.gz')).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(InvalidDumpError);
    expect((error as NodeJS.ErrnoException).code).toBe('ENOENT');
  });
});
