import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { bytesCounter, createParallelGzip, DEFAULT_CHUNK_SIZE } from './parallel-gzip';

const run = promisify(execFile);

// Wraps zlib.gzip so tests can count overlapping calls, delay completions and inject failures.
const zlibHooks = vi.hoisted(() => ({
  active: 0,
  maxActive: 0,
  calls: 0,
  delayMs: null as null | ((call: number) => number),
  fail: false,
}));
vi.mock('node:zlib', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:zlib')>();
  const gzip = (input: Buffer, options: object, callback: (error: Error | null, out: Buffer) => void) => {
    const call = zlibHooks.calls++;
    zlibHooks.active++;
    zlibHooks.maxActive = Math.max(zlibHooks.maxActive, zlibHooks.active);
    actual.gzip(input, options, (error, out) => {
      const done = () => {
        zlibHooks.active--;
        callback(zlibHooks.fail ? new Error('injected zlib failure') : error, out);
      };
      const delay = zlibHooks.delayMs?.(call) ?? 0;
      if (delay > 0) setTimeout(done, delay);
      else done();
    });
  };
  return { ...actual, gzip, default: { ...actual, gzip } };
});

afterEach(async () => {
  // A destroyed stream's zlib calls still finish; let them, so they do not skew the next test.
  while (zlibHooks.active > 0) await sleep(5);
  Object.assign(zlibHooks, { active: 0, maxActive: 0, calls: 0, delayMs: null, fail: false });
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parallel-gzip-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// Feeds input in uneven pieces so chunk boundaries never line up with writes.
function* pieces(input: Buffer): Generator<Buffer> {
  let offset = 0;
  let size = 1;
  while (offset < input.length) {
    yield input.subarray(offset, offset + size);
    offset += size;
    size = (size * 7 + 3) % 70_001;
  }
}

async function compress(input: Buffer, gz: Transform): Promise<Buffer> {
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out.push(chunk);
      callback();
    },
  });
  await pipeline(Readable.from(pieces(input)), gz, sink);
  return Buffer.concat(out);
}

async function gzipTestAccepts(gz: Buffer, name: string): Promise<void> {
  const path = join(dir, name);
  await writeFile(path, gz);
  await run('gunzip', ['-t', path]);
}

const compressible = Buffer.from(
  Array.from({ length: 40_000 }, (_, i) => `${i}\tupload/${i % 7}/ab/cd/photo-${i}.jpg\t2024-01-0${i % 9} 12:00:00+00\n`).join(''),
);

describe('createParallelGzip', () => {
  const cases: Array<[string, Buffer, number]> = [
    ['random, 1 KiB chunks', randomBytes(300_000), 1024],
    ['random, 64 KiB chunks', randomBytes(1_000_000), 64 * 1024],
    ['random, default chunk size', randomBytes(3 * 1024 * 1024 + 17), 0],
    ['random, input exactly two chunks', randomBytes(2 * 65_536), 65_536],
    ['compressible, 4 KiB chunks', compressible, 4096],
    ['compressible, 100 KiB chunks', compressible, 100 * 1024],
    ['compressible, default chunk size', Buffer.concat([compressible, compressible, compressible]), 0],
  ];
  for (const [name, input, chunkSize] of cases) {
    it(`round-trips ${name}`, async () => {
      const gz = await compress(input, createParallelGzip({ concurrency: 3, ...(chunkSize ? { chunkSize } : {}) }));
      expect(gunzipSync(gz).equals(input)).toBe(true);
      const expectedMembers = Math.max(1, Math.ceil(input.length / (chunkSize || DEFAULT_CHUNK_SIZE)));
      expect(zlibHooks.calls).toBe(expectedMembers);
      await gzipTestAccepts(gz, `${name.replace(/\W+/g, '-')}.gz`);
    });
  }

  it('keeps input order when later members finish first', async () => {
    // Each earlier call is slower, so completions arrive in reverse order.
    zlibHooks.delayMs = (call) => Math.max(0, 40 - call * 10);
    const input = Buffer.concat(Array.from({ length: 12 }, (_, i) => Buffer.alloc(1000, 65 + i)));
    const gz = await compress(input, createParallelGzip({ chunkSize: 1000, concurrency: 4 }));
    expect(zlibHooks.maxActive).toBe(4);
    expect(gunzipSync(gz).equals(input)).toBe(true);
  });

  it('copies its input: a writer may refill its buffer once a write is accepted, while members still compress', async () => {
    zlibHooks.delayMs = (call) => (call % 2 ? 15 : 1);
    const gz = createParallelGzip({ chunkSize: 3000, concurrency: 3 });
    const out: Buffer[] = [];
    gz.on('data', (chunk: Buffer) => out.push(chunk));
    const buffer = Buffer.alloc(1000);
    const expected: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      buffer.fill(33 + i);
      expected.push(Buffer.from(buffer));
      await new Promise<void>((resolve, reject) => gz.write(buffer, (error) => (error ? reject(error) : resolve())));
    }
    gz.end();
    await once(gz, 'end');
    expect(gunzipSync(Buffer.concat(out)).equals(Buffer.concat(expected))).toBe(true);
  });

  it('writes a valid empty gzip file for empty input', async () => {
    const gz = await compress(Buffer.alloc(0), createParallelGzip());
    expect(gz.length).toBeGreaterThan(0);
    expect(gunzipSync(gz).length).toBe(0);
    await gzipTestAccepts(gz, 'empty.gz');
  });

  it('never has more than `concurrency` chunks compressing', async () => {
    zlibHooks.delayMs = () => 2;
    const input = randomBytes(2 * 1024 * 1024);
    const gz = await compress(input, createParallelGzip({ chunkSize: 32 * 1024, concurrency: 3 }));
    expect(zlibHooks.maxActive).toBe(3);
    expect(gunzipSync(gz).equals(input)).toBe(true);
  });

  it('stops accepting input while nobody reads its output', async () => {
    const chunkSize = 16 * 1024;
    const gz = createParallelGzip({ chunkSize, concurrency: 2 });
    let accepted = 0;
    for (let i = 0; i < 200; i++) {
      const piece = randomBytes(chunkSize);
      accepted += piece.length;
      if (!gz.write(piece)) {
        const drained = await Promise.race([once(gz, 'drain').then(() => true), sleep(200).then(() => false)]);
        if (!drained) break;
      }
    }
    // Bounded by what the pending, in-flight, readable and writable buffers may hold.
    expect(accepted).toBeLessThan(12 * chunkSize);
    expect(zlibHooks.calls).toBeLessThanOrEqual(6);
    gz.destroy();
  });

  it('finishes when its reader is slower than compression', async () => {
    const input = randomBytes(600_000);
    const out: Buffer[] = [];
    const slowSink = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        setTimeout(callback, 1);
      },
    });
    await pipeline(Readable.from(pieces(input)), createParallelGzip({ chunkSize: 4096, concurrency: 3 }), slowSink);
    expect(gunzipSync(Buffer.concat(out)).equals(input)).toBe(true);
  });

  it('emits zlib failures as stream errors', async () => {
    zlibHooks.fail = true;
    await expect(compress(randomBytes(10_000), createParallelGzip({ chunkSize: 1000 }))).rejects.toThrow('injected zlib failure');
  });

  it('can be destroyed while chunks are compressing', async () => {
    zlibHooks.delayMs = () => 20;
    const gz = createParallelGzip({ chunkSize: 1000, concurrency: 4 });
    const data: Buffer[] = [];
    gz.on('data', (chunk: Buffer) => data.push(chunk));
    const errors: Error[] = [];
    gz.on('error', (error) => errors.push(error));
    gz.write(randomBytes(5000));
    expect(zlibHooks.active).toBe(4);
    gz.destroy();
    // The calls already under way still finish (20 ms each, longer on a loaded machine)...
    await vi.waitFor(() => expect(zlibHooks.active).toBe(0), { timeout: 10_000, interval: 5 });
    await sleep(5);
    // ...and their results go nowhere.
    expect(data).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('rejects an invalid level up front', () => {
    expect(() => createParallelGzip({ level: 12 })).toThrow(RangeError);
  });
});

describe('bytesCounter', () => {
  it('reports the running total and passes data through', async () => {
    const totals: number[] = [];
    const out: Buffer[] = [];
    await pipeline(
      Readable.from([Buffer.from('abc'), Buffer.from('defgh')]),
      bytesCounter((total) => totals.push(total)),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          out.push(chunk);
          callback();
        },
      }),
    );
    expect(totals).toEqual([3, 8]);
    expect(Buffer.concat(out).toString()).toBe('abcdefgh');
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
