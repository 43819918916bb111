import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { GzipCheck } from './gzip-check';

/** Feeds `data` in `piece`-sized parts, waiting whenever the check asks to; counts the waits. */
async function feedAll(check: GzipCheck, data: Buffer, piece = 65_536): Promise<{ error: Error | null; waits: number }> {
  let waits = 0;
  for (let offset = 0; offset < data.length; offset += piece) {
    const part = Buffer.from(data.subarray(offset, offset + piece));
    await new Promise<void>((resolve) => {
      if (check.feed(part, resolve)) resolve();
      else waits++;
    });
    // The caller's buffer is its own again at once: scribbling on it must not change what is checked.
    part.fill(0);
  }
  return { error: await check.finish(), waits };
}

// Random text compresses a little: an 8 MiB dump is several slices of both input and output.
const text = Buffer.from(Array.from({ length: 120_000 }, (_, i) => `${i}\t${randomBytes(48).toString('base64')}\n`).join(''));
const gz = gzipSync(text, { level: 1 });

describe('GzipCheck', () => {
  it('passes an intact gzip fed in pieces of any size', async () => {
    for (const piece of [1, 1000, 65_536, 3_000_001]) {
      const source = piece === 1 ? gzipSync(text.subarray(0, 20_000)) : gz;
      const { error } = await feedAll(new GzipCheck({ sliceSize: 256 * 1024 }), source, piece);
      expect(error).toBeNull();
    }
  });

  it('passes several members (a parallel-gzip backup)', async () => {
    const members = Buffer.concat([gzipSync(text.subarray(0, 500_000)), gzipSync(text.subarray(500_000))]);
    expect((await feedAll(new GzipCheck(), members)).error).toBeNull();
  });

  it('finds a flipped byte deep inside, a cut end and a missing trailer', async () => {
    const flipped = Buffer.from(gz);
    flipped[Math.floor(gz.length * 0.8)] ^= 0xff;
    const broken = [flipped, gz.subarray(0, gz.length - 1000), gz.subarray(0, gz.length - 4)];
    for (const data of broken) {
      const { error } = await feedAll(new GzipCheck({ sliceSize: 128 * 1024 }), data);
      expect(error).toBeInstanceOf(Error);
    }
  });

  it('finds content that is not gzip at all', async () => {
    expect((await feedAll(new GzipCheck(), text.subarray(0, 100_000))).error).toBeInstanceOf(Error);
  });

  it('asks its caller to wait when zlib falls behind, so memory stays bounded', async () => {
    // Two 16 KiB slices at most: 12 MiB cannot be fed without waiting.
    const { error, waits } = await feedAll(new GzipCheck({ sliceSize: 16 * 1024, maxSlices: 2 }), gz, 100_000);
    expect(error).toBeNull();
    expect(waits).toBeGreaterThan(0);
  });

  it('resolves finish() with an error once destroyed', async () => {
    const check = new GzipCheck();
    check.feed(gz.subarray(0, 100_000), () => undefined);
    check.destroy();
    expect(await check.finish()).toBeInstanceOf(Error);
  });
});
