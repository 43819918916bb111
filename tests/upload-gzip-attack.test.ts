/**
 * Crafted .sql.gz uploads against the upload's fast gzip check (IgzipCheck: igzip -d, wc -c and
 * the last 4 bytes) and the zlib that every later reading uses. The rule under attack: a file
 * zlib would reject must never be restorable, and what igzip checked must be what zlib reads.
 */
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { createGzip, crc32 as zlibCrc32, deflateRawSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withClient } from './helpers/pg';
import { backupFiles, DUMP as DUMP_HEAD, eventually, postUpload, startUploadServer, uploadForm, type UploadServer } from './helpers/upload-server';

// A dump's beginning, a table and its data, and the end line.
const DUMP = `${DUMP_HEAD}\n\n--\n-- PostgreSQL database dump complete\n--\n\n`;

// ---------- gzip crafting ----------

function crc32(data: Buffer): number {
  if (typeof zlibCrc32 === 'function') return zlibCrc32(data) >>> 0;
  let crc = ~0;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

interface MemberOptions {
  flags?: number;
  extra?: Buffer;
  name?: Buffer;
  comment?: Buffer;
  /** The header CRC-16 to write (FHCRC); default: the right one. */
  headerCrc?: number;
  method?: number;
  crc?: number;
  isize?: number;
  /** The deflate data; default: the text deflated. */
  body?: Buffer;
  level?: number;
}

/** One gzip member written by hand, so every field can be wrong on purpose. */
function member(text: Buffer | string, options: MemberOptions = {}): Buffer {
  const data = Buffer.from(text);
  const flags = options.flags ?? 0;
  const parts: Buffer[] = [Buffer.from([0x1f, 0x8b, options.method ?? 8, flags, 0, 0, 0, 0, 0, 0xff])];
  if (flags & 4) {
    const length = Buffer.alloc(2);
    length.writeUInt16LE(options.extra!.length);
    parts.push(length, options.extra!);
  }
  if (flags & 8) parts.push(options.name!, Buffer.from([0]));
  if (flags & 16) parts.push(options.comment!, Buffer.from([0]));
  if (flags & 2) {
    const hcrc = Buffer.alloc(2);
    hcrc.writeUInt16LE(options.headerCrc ?? crc32(Buffer.concat(parts)) & 0xffff);
    parts.push(hcrc);
  }
  parts.push(options.body ?? deflateRawSync(data, { level: options.level ?? 6 }));
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(options.crc ?? crc32(data), 0);
  trailer.writeUInt32LE((options.isize ?? data.length) % 2 ** 32, 4);
  parts.push(trailer);
  return Buffer.concat(parts);
}

const uint32 = (value: number) => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value % 2 ** 32);
  return bytes;
};

/** A deflate stream with a fixed-Huffman block, written bit by bit (for invalid codes). */
class Bits {
  private value = 0;
  private count = 0;
  private readonly bytes: number[] = [];
  put(value: number, n: number): this {
    for (let i = 0; i < n; i++) {
      this.value |= ((value >> i) & 1) << this.count;
      if (++this.count === 8) {
        this.bytes.push(this.value);
        this.value = 0;
        this.count = 0;
      }
    }
    return this;
  }
  huffman(code: number, n: number): this {
    for (let i = n - 1; i >= 0; i--) this.put((code >> i) & 1, 1);
    return this;
  }
  literal(symbol: number): this {
    if (symbol < 144) return this.huffman(0x30 + symbol, 8);
    if (symbol < 256) return this.huffman(0x190 + symbol - 144, 9);
    if (symbol < 280) return this.huffman(symbol - 256, 7);
    return this.huffman(0xc0 + symbol - 280, 8);
  }
  done(): Buffer {
    return Buffer.from(this.count ? [...this.bytes, this.value] : this.bytes);
  }
}
const fixedBlock = () => new Bits().put(1, 1).put(1, 2);

const IGZIP = '/usr/bin/igzip';
/** What igzip -d -c makes of the bytes: its exit code and its output (the restore's other inflater). */
function igzipInflate(bytes: Buffer): { status: number | null; out: Buffer } {
  const result = spawnSync(IGZIP, ['-d', '-c'], { input: bytes, maxBuffer: 64 * 1024 * 1024 });
  return { status: result.status, out: result.stdout };
}
function zlibInflate(bytes: Buffer): Buffer | Error {
  try {
    return gunzipSync(bytes);
  } catch (error) {
    return error as Error;
  }
}

// ---------- the server, as tests/upload.test.ts starts it ----------

const form = (name: string, content: Buffer | string) => uploadForm(name, content);
const post = (server: UploadServer, name: string, content: Buffer | string) => postUpload(server, form(name, content));

/** igzip and wc processes this test process started (the check's worker spawns them). */
function checkChildren(): string[] {
  const out = spawnSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /\s(igzip|wc)$/.test(line));
}

/**
 * Over 64 KiB of gzip (the upload's head check reads only that much of the file): a dump whose
 * end the head check never sees, so what follows its member meets only the whole-file check.
 */
const ROWS = 1500;
const dumpText = Buffer.from(DUMP.replace('\\.\n', `${Array.from({ length: ROWS }, (_, row) => `${row + 2}\t${randomBytes(100).toString('hex')}\n`).join('')}\\.\n`));
const good = () => member(dumpText);

describe('crafted .sql.gz uploads against the igzip check', () => {
  let server: UploadServer;
  let seq = 0;
  const name = (what: string) => `${what}-${++seq}.sql.gz`;

  beforeAll(async () => {
    server = await startUploadServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Posts, and when stored waits for the verification that every upload gets, then deletes the file. */
  async function upload(what: string, bytes: Buffer) {
    const before = backupFiles(server);
    const { status, body } = await post(server, name(what), bytes);
    const { app } = server.instance;
    let verification: { status: string; error: string | null } | null = null;
    let manifest = null;
    if (status === 201) {
      verification = await app.verification.verify(body.filename!);
      manifest = await app.backups.manifests.read(body.filename!);
    }
    const left = backupFiles(server).filter((file) => !before.includes(file));
    return {
      status,
      body,
      verification,
      manifest,
      left,
      cleanup: async () => {
        if (status === 201) await app.backups.deleteBackups([body.filename!]);
      },
    };
  }

  it('the instance checks uploads with igzip (else every case below proves nothing about it)', () => {
    expect(server.instance.app.config.igzip).toBeTruthy();
    expect(igzipInflate(good()).out.equals(dumpText)).toBe(true);
  });

  describe('refused with 400, nothing left in backups/', () => {
    const refused: [string, () => Buffer][] = [
      ['text bytes after the end', () => Buffer.concat([good(), Buffer.from('junk')])],
      ['one 0x1f byte after the end', () => Buffer.concat([good(), Buffer.from([0x1f])])],
      ['a bare gzip magic after the end', () => Buffer.concat([good(), Buffer.from([0x1f, 0x8b])])],
      ['half a member header after the end', () => Buffer.concat([good(), member('x').subarray(0, 6)])],
      ['a wrong CRC-32', () => member(dumpText, { crc: 0xdeadbeef })],
      ['a wrong ISIZE', () => member(dumpText, { isize: dumpText.length + 1 })],
      ['ISIZE off by 2^32 can not be told from the right one, but a wrong CRC with it still can', () => member(dumpText, { isize: dumpText.length + 2 ** 32 - 1, crc: 1 })],
      ['a second member with a wrong CRC-32', () => Buffer.concat([good(), member('SELECT 2;\n', { crc: 7 })])],
      ['a second member with a wrong ISIZE that equals the total', () => Buffer.concat([good(), member('x', { isize: dumpText.length + 1 })])],
      ['a second member with a wrong header CRC-16 (FHCRC)', () => Buffer.concat([good(), member('SELECT 2;\n', { flags: 2, headerCrc: 0x1234 })])],
      ['an empty member, then one with a wrong header CRC-16', () => Buffer.concat([member(''), member(dumpText, { flags: 2, headerCrc: 0x1234 })])],
      ['a second member with compression method 7', () => Buffer.concat([good(), member('SELECT 2;\n', { method: 7 })])],
      ['a second member cut short', () => Buffer.concat([good(), member('SELECT 2;\n').subarray(0, 15)])],
      ['a second member with reserved flag bits set', () => Buffer.concat([good(), member('SELECT 2;\n', { flags: 0x20 })])],
      ['a distance too far back', () => Buffer.concat([good(), member('a\0\0\0', { body: fixedBlock().literal(0x61).literal(257).huffman(4, 5).put(0, 1).literal(256).done() })])],
      ['distance code 30', () => Buffer.concat([good(), member('aba', { body: fixedBlock().literal(0x61).literal(0x62).literal(257).huffman(30, 5).literal(256).done() })])],
      ['literal/length code 286', () => Buffer.concat([good(), member('a', { body: fixedBlock().literal(0x61).literal(286).literal(256).done() })])],
      ['a stored block whose NLEN is not ~LEN', () => Buffer.concat([good(), member('ab', { body: Buffer.from([1, 2, 0, 0, 0, 0x61, 0x62]) })])],
    ];
    it.each(refused)('%s', async (_what, make) => {
      const bytes = make();
      // zlib, which every later reading uses, rejects each of these.
      expect(zlibInflate(bytes)).toBeInstanceOf(Error);
      const result = await upload('refused', bytes);
      await result.cleanup();
      expect(result.status).toBe(400);
      expect(result.body.message).toMatch(/not a valid gzip|not a PostgreSQL|dump/i);
      expect(result.left).toEqual([]);
    });
  });

  describe('files both inflaters accept: stored, verified, and igzip reads the very text zlib reads', () => {
    const accepted: [string, () => Buffer][] = [
      ['a plain member', good],
      ['a stored (level 0) member', () => member(dumpText, { level: 0 })],
      ['a member with a right FHCRC', () => member(dumpText, { flags: 2 })],
      ['a member with a 60 KiB FEXTRA, a 100 KB FNAME and a 100 KB FCOMMENT', () => member(dumpText, { flags: 4 | 8 | 16, extra: Buffer.concat([Buffer.from('AB'), uint32(61_436).subarray(0, 2), Buffer.alloc(61_436, 0x65)]), name: Buffer.alloc(100_000, 0x6e), comment: Buffer.alloc(100_000, 0x63) })],
      ['an FEXTRA whose subfields do not add up', () => member(dumpText, { flags: 4, extra: Buffer.from('xyz') })],
      ['an empty member first (its length, 0, does not change the total)', () => Buffer.concat([member(''), good()])],
      ['an empty member last', () => Buffer.concat([good(), member('')])],
      ['the dump split into three members', () => Buffer.concat([member(dumpText.subarray(0, 40)), member(dumpText.subarray(40, 200)), member(dumpText.subarray(200))])],
      ['zero bytes after the end', () => Buffer.concat([good(), Buffer.alloc(64)])],
      ['a zero byte, then junk', () => Buffer.concat([good(), Buffer.from('\0this is no member')])],
      ['a zero byte, then junk ending in the forged length (igzip: intact; zlib: ends at the zero)', () => Buffer.concat([good(), Buffer.from('\0junkjunk'), good().subarray(-8)])],
      ['a zero byte, then a whole second member that neither reads', () => Buffer.concat([good(), Buffer.alloc(1), member('DROP TABLE public.notes;\n')])],
      ['zero bytes, then a member whose length makes the last 4 bytes the total', () => Buffer.concat([good(), Buffer.alloc(8), member(Buffer.alloc(dumpText.length, 0x2d))])],
    ];
    it.each(accepted)('%s', async (_what, make) => {
      const bytes = make();
      const zlibText = zlibInflate(bytes);
      expect(zlibText).toBeInstanceOf(Buffer);
      // The restore may read a verified file with igzip: it must see the text zlib verified.
      const igzip = igzipInflate(bytes);
      expect(igzip.status).toBe(0);
      expect(igzip.out.equals(zlibText as Buffer)).toBe(true);
      const result = await upload('accepted', bytes);
      await result.cleanup();
      expect(result.status).toBe(201);
      expect(result.body.filesize).toBe(bytes.length);
      expect(result.verification).toMatchObject({ status: 'verified' });
      expect(result.manifest!.rowsPending).not.toBe(true);
      expect(result.manifest!.tables).toEqual({ 'public.notes': ROWS + 1 });
      expect(result.manifest!.uncompressedSize).toBe((zlibText as Buffer).length);
    });
  });

  describe('headers igzip reads and zlib rejects', () => {
    // zlib: "unknown header flags set" (RFC 1952: reserved FLG bits must be zero). igzip ignores them and exits 0,
    // and the trailer's length is the inflated length, so IgzipCheck calls the file intact.
    const reserved: [string, () => Buffer][] = [
      ['a single member with FLG bit 5 set', () => member(dumpText, { flags: 0x20 })],
      ['a single member with FLG bits 5-7 set', () => member(dumpText, { flags: 0xe0 })],
      ['an empty member, then the dump with FLG bit 6 set', () => Buffer.concat([member(''), member(dumpText, { flags: 0x40 })])],
      ['the dump, then an empty member with FLG bit 7 set (zlib decides: already refused)', () => Buffer.concat([good(), member('', { flags: 0x80 })])],
    ];

    it.each(reserved)('the two inflaters disagree on: %s', (_what, make) => {
      const bytes = make();
      expect(zlibInflate(bytes)).toBeInstanceOf(Error);
      expect((zlibInflate(bytes) as Error).message).toMatch(/unknown header flags/);
      expect(igzipInflate(bytes).status).toBe(0);
    });

    it.each(reserved)('upload → 400, as zlib (every later reading) rejects it: %s', async (_what, make) => {
      const result = await upload('reserved', make());
      await result.cleanup();
      expect(result.status).toBe(400);
      expect(result.body.message).toMatch(/not a valid gzip/);
      expect(result.left).toEqual([]);
    });

    it.each(reserved)('if stored anyway, its verification finds it corrupted and a restore and a drill refuse it: %s', async (_what, make) => {
      const { app } = server.instance;
      const result = await upload('reserved-restore', make());
      try {
        if (result.status === 201) {
          expect(result.verification).toMatchObject({ status: 'corrupted' });
          expect(result.verification!.error).toMatch(/gzip data is damaged/);
          expect(result.manifest!.tables).toEqual({});
          await expect(app.restore.startRestore(result.body.filename!, { by: 'test' })).rejects.toThrow(/cannot be restored: verification found it corrupted/);
          expect(app.maintenance.isActive()).toBe(false);
          const drill = await app.drills.start(result.body.filename!).then(
            (started) => started.done,
            (error: Error) => ({ status: 'refused', error: error.message }),
          );
          expect(JSON.stringify(drill)).toMatch(/corrupted|damaged|refused/);
          expect((drill as { status: string }).status).not.toBe('passed');
        } else {
          expect(result.status).toBe(400);
          expect(result.left).toEqual([]);
        }
      } finally {
        await result.cleanup();
      }
    });
  });

  describe('forged trailers (junk after the end whose last 4 bytes are the inflated length): stored, then found corrupted, never restorable', () => {
    const forged: [string, () => Buffer][] = [
      ['one junk byte and the length', () => Buffer.concat([good(), Buffer.from('j'), uint32(dumpText.length)])],
      ['junk and a copy of the trailer', () => Buffer.concat([good(), Buffer.from('junkjunk'), good().subarray(-8)])],
      ['the length only (a 4-byte tail igzip ignores: it is no header)', () => Buffer.concat([good(), uint32(dumpText.length)])],
      ['an empty member, the dump, then junk ending in the length', () => Buffer.concat([member(''), good(), Buffer.from('\x1fjunk'), uint32(dumpText.length)])],
    ];
    it.each(forged)('%s', async (_what, make) => {
      const { app } = server.instance;
      const bytes = make();
      expect(zlibInflate(bytes)).toBeInstanceOf(Error);
      const result = await upload('forged', bytes);
      try {
        // By design (see IgzipCheck): igzip calls it intact, so it is stored; the verification (zlib) then finds it corrupted.
        expect(result.status).toBe(201);
        expect(result.verification).toMatchObject({ status: 'corrupted' });
        expect(result.verification!.error).toMatch(/gzip data is damaged/);
        expect(result.manifest!.tables).toEqual({});
        await expect(app.restore.startRestore(result.body.filename!, { by: 'test' })).rejects.toThrow(/cannot be restored: verification found it corrupted/);
        expect(app.maintenance.isActive()).toBe(false);
        const drill = await app.drills.start(result.body.filename!).then(
          (started) => started.done,
          (error: Error) => ({ status: 'refused', error: error.message }),
        );
        expect((drill as { status: string }).status).not.toBe('passed');
        expect(JSON.stringify(drill)).toMatch(/corrupted|damaged/);
      } finally {
        await result.cleanup();
      }
    });
  });

  it('a restore in the window before the verification (none recorded yet) of a forged-trailer file loads nothing', async () => {
    const { app } = server.instance;
    const bytes = Buffer.concat([good(), Buffer.from('junk'), good().subarray(-8)]);
    const result = await upload('window', bytes);
    try {
      expect(result.status).toBe(201);
      expect(result.verification).toMatchObject({ status: 'corrupted' });
      // As if the server stopped right after the upload answered: no verification in the manifest yet.
      await app.backups.manifests.update(result.body.filename!, (current) => ({ ...current, verification: undefined }) as unknown as typeof current);
      const dump = await app.restore.validate(result.body.filename!);
      const outcome = await app.restore.restore(dump, { by: 'test' }).then(
        (status) => JSON.stringify(status),
        (error: Error) => `rejected: ${error.message}`,
      );
      expect(outcome).toMatch(/damaged|corrupted|incorrect header/i);
      // The dump's table never reached the live database.
      const notes = await withClient(server.instance.database, (client) => client.query("SELECT to_regclass('public.notes') AS t"));
      expect(notes.rows[0].t).toBeNull();
    } finally {
      if (app.maintenance.isActive()) await app.maintenance.end({}, 'test').catch(() => undefined);
      await result.cleanup().catch(() => undefined);
    }
  });

  describe('resources', () => {
    it('a gzip bomb (a 256 MiB text in a few hundred KB) is counted, not held: the process grows by far less than the 256 MiB it inflates to', async () => {
      const chunk = Buffer.alloc(1024 * 1024, '--\n');
      const gzip = createGzip({ level: 9 });
      const parts: Buffer[] = [];
      gzip.on('data', (piece: Buffer) => parts.push(piece));
      const ended = new Promise((resolve) => gzip.on('end', resolve));
      gzip.write(DUMP.slice(0, DUMP.indexOf('CREATE')));
      for (let i = 0; i < 256; i++) if (!gzip.write(chunk)) await new Promise((resolve) => gzip.once('drain', resolve));
      gzip.end();
      await ended;
      const bomb = Buffer.concat(parts);
      expect(bomb.length).toBeLessThan(2 * 1024 * 1024);
      global.gc?.();
      const base = process.memoryUsage().rss;
      let peak = base;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
      try {
        const result = await upload('bomb', bomb);
        await result.cleanup();
        expect(result.status).toBe(201);
        // No end line: the verification says so (it read all 256 MiB).
        expect(result.verification).toMatchObject({ status: 'corrupted' });
        expect(result.manifest!.uncompressedSize).toBeGreaterThan(256 * 1024 * 1024);
      } finally {
        clearInterval(sampler);
      }
      // Upload check (igzip, out of process) and the verification after it (zlib, streamed): neither holds the text.
      expect(peak - base).toBeLessThan(192 * 1024 * 1024);
      expect(await eventually(() => checkChildren().length === 0)).toBe(true);
    }, 120_000);

    /** Posts with a deadline: a hung upload is cut by the client (so the server cleans up) and answers 'hung'. */
    async function postWithin(what: string, bytes: Buffer, ms: number): Promise<number | 'hung'> {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), ms);
      try {
        const response = await fetch(server.url, { method: 'POST', body: form(name(what), bytes), headers: { authorization: `Bearer ${server.admin}` }, signal: controller.signal });
        const body = (await response.json()) as { filename?: string };
        if (response.status === 201) await server.instance.app.backups.deleteBackups([body.filename!]);
        return response.status;
      } catch (error) {
        if (controller.signal.aborted) return 'hung';
        throw error;
      } finally {
        clearTimeout(timer);
      }
    }

    // igzip exits as soon as it meets bytes that are no member (exit 0) or a damaged block (exit 1), without reading the rest;
    // the worker then ends (IgzipCheck terminates it once igzip and wc exited), the slices it held are never handed back,
    // and feed() waits for room that never comes: the transfer stops for good once 8 MiB more have arrived.
    it('junk right after the first member, then 20 MB more: the upload still finishes with 400, and nothing is left', async () => {
      const before = backupFiles(server);
      const bytes = Buffer.concat([good(), Buffer.from('junk'), randomBytes(20 * 1024 * 1024)]);
      expect(await postWithin('early-stop', bytes, 30_000)).toBe(400);
      expect(await eventually(() => backupFiles(server).length === before.length)).toBe(true);
      expect(await eventually(() => checkChildren().length === 0)).toBe(true);
    }, 60_000);

    it('a dump padded with 24 MiB of zero bytes (zlib reads it whole: a good file) → 201 and verified, not a transfer that stops for good', async () => {
      const bytes = Buffer.concat([good(), Buffer.alloc(24 * 1024 * 1024)]);
      expect(zlibInflate(bytes)).toBeInstanceOf(Buffer);
      expect(await postWithin('zero-padded', bytes, 30_000)).toBe(201);
      expect(await eventually(() => checkChildren().length === 0)).toBe(true);
    }, 60_000);

    it('a 20 MB gzip damaged near its start (as in transit): 400, not a transfer that stops for good', async () => {
      const before = backupFiles(server);
      const text = Buffer.concat([dumpText.subarray(0, dumpText.length - 4), Buffer.from(randomBytes(14 * 1024 * 1024).toString('base64')), Buffer.from('\n\\.\n')]);
      const bytes = gzipSync(text, { level: 1 });
      expect(bytes.length).toBeGreaterThan(12 * 1024 * 1024);
      bytes[Math.floor(bytes.length * 0.05)] ^= 0xff;
      expect(zlibInflate(bytes)).toBeInstanceOf(Error);
      expect(await postWithin('damaged-early', bytes, 30_000)).toBe(400);
      expect(await eventually(() => backupFiles(server).length === before.length)).toBe(true);
      expect(await eventually(() => checkChildren().length === 0)).toBe(true);
    }, 60_000);

    it('an upload aborted halfway leaves no igzip, wc or file behind', async () => {
      const before = backupFiles(server);
      const url = new URL(server.url);
      const boundary = 'attack-boundary';
      const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="aborted.sql.gz"\r\ncontent-type: application/gzip\r\n\r\n`);
      const payload = gzipSync(DUMP + randomBytes(4_000_000).toString('hex'), { level: 1 });
      const request = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { authorization: `Bearer ${server.admin}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + payload.length + 100 },
      });
      request.on('error', () => undefined);
      request.write(head);
      request.write(payload.subarray(0, payload.length / 2));
      // The check runs while the body streams in: its igzip and wc exist now.
      expect(await eventually(() => checkChildren().length >= 2)).toBe(true);
      request.destroy();
      expect(await eventually(() => checkChildren().length === 0)).toBe(true);
      expect(await eventually(() => backupFiles(server).length === before.length)).toBe(true);
      expect(backupFiles(server)).toEqual(before);
    });

    it('an upload stalled halfway (the client goes quiet, connection open) keeps one igzip and one wc, and they go when it is cut', async () => {
      const url = new URL(server.url);
      const boundary = 'stall-boundary';
      const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="stalled.sql.gz"\r\n\r\n`);
      const payload = gzipSync(DUMP + randomBytes(1_000_000).toString('hex'), { level: 1 });
      const request = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { authorization: `Bearer ${server.admin}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + payload.length + 100 },
      });
      request.on('error', () => undefined);
      request.write(Buffer.concat([head, payload.subarray(0, 1000)]));
      expect(await eventually(() => checkChildren().length === 2)).toBe(true);
      request.destroy();
      expect(await eventually(() => checkChildren().length === 0)).toBe(true);
    });

    it('12 concurrent uploads (good and bad mixed) each get their own answer, and no check process outlives them', async () => {
      const files = Array.from({ length: 12 }, (_, i) => {
        const dump = gzipSync(DUMP.replace('\\.\n', `${Array.from({ length: 2000 }, (_, row) => `${row + 2}\t${randomBytes(200).toString('hex')}\n`).join('')}\\.\n`), { level: 1 });
        return i % 3 === 0 ? Buffer.concat([dump, Buffer.from('junk'), dump.subarray(-4)]) : i % 3 === 1 ? Buffer.concat([dump, Buffer.from('junk')]) : dump;
      });
      const results = await Promise.all(files.map((bytes, i) => post(server, `concurrent-${i}.sql.gz`, bytes)));
      const { app } = server.instance;
      for (const [i, result] of results.entries()) {
        if (i % 3 === 1) expect(result.status).toBe(400);
        else expect(result.status).toBe(201);
      }
      for (const [i, result] of results.entries()) {
        if (result.status !== 201) continue;
        const verification = await app.verification.verify(result.body.filename!);
        // The forged-trailer ones (i % 3 === 0) are found corrupted; the rest verified.
        expect(verification.status).toBe(i % 3 === 0 ? 'corrupted' : 'verified');
        await app.backups.deleteBackups([result.body.filename!]);
      }
      expect(await eventually(() => checkChildren().length === 0)).toBe(true);
    }, 120_000);
  });
});
