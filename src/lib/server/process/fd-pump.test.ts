import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { closeFd, FdReader, FdWriter, makePipes } from './fd-pump';

const openFds = () => readdirSync('/proc/self/fd').length;
/** The child and its exit code (listened for at once: it may exit before it is awaited). */
function start(command: string, args: string[], stdio: Parameters<typeof spawn>[2]['stdio']) {
  const child = spawn(command, args, { stdio });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  return { child, exited };
}

describe('fd pumps: a child\'s pipe read and written by threads', () => {
  it('reads every byte a child writes, in order, across many buffers and pauses', async () => {
    const before = openFds();
    const [pipe] = (await makePipes(1))!;
    const data = randomBytes(5 * 1024 * 1024 + 12345);
    // The child writes the bytes it gets on stdin to the pipe (our end is read by the thread).
    const { child, exited } = start('cat', [], ['pipe', pipe.writeEnd, 'ignore']);
    closeFd(pipe.writeEnd);
    child.stdin!.end(data);
    const hash = createHash('sha256');
    let bytes = 0;
    let chunks = 0;
    const reader: FdReader = new FdReader(pipe.readEnd, (chunk) => {
      hash.update(chunk);
      bytes += chunk.length;
      // Backpressure: every other chunk holds the buffers back for a moment.
      if (++chunks % 2 === 0) {
        reader.pause();
        setTimeout(() => reader.resume(), 5);
      }
    });
    await reader.done;
    await reader.stop();
    closeFd(pipe.readEnd);
    expect(await exited).toBe(0);
    expect(bytes).toBe(data.length);
    expect(chunks).toBeGreaterThan(5);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(openFds()).toBe(before);
  });

  it('writes everything it is given, in order, and the child sees the end once our end is closed', async () => {
    const before = openFds();
    const [pipe] = (await makePipes(1))!;
    const { child, exited } = start('sha256sum', [], [pipe.readEnd, 'pipe', 'ignore']);
    closeFd(pipe.readEnd);
    let printed = '';
    child.stdout!.on('data', (text) => (printed += text));
    const writer = new FdWriter(pipe.writeEnd);
    const hash = createHash('sha256');
    for (let i = 0; i < 40; i++) {
      // Pieces of every size, strings too, as the filter hands them on.
      const piece = i % 3 === 0 ? `line ${i}\n` : randomBytes(1 + ((i * 97_531) % 400_000));
      hash.update(piece);
      if (!writer.write(piece)) await writer.drained();
    }
    writer.flush();
    await writer.drained(true);
    await writer.stop();
    closeFd(pipe.writeEnd);
    expect(await exited).toBe(0);
    expect(printed.split(' ')[0]).toBe(hash.digest('hex'));
    expect(openFds()).toBe(before);
  });

  it('a child that stops reading fails the writes (EPIPE), it does not hang them', async () => {
    const [pipe] = (await makePipes(1))!;
    const { exited } = start('head', ['-c', '10'], [pipe.readEnd, 'ignore', 'ignore']);
    closeFd(pipe.readEnd);
    const writer = new FdWriter(pipe.writeEnd);
    const error = await (async () => {
      for (let i = 0; i < 64; i++) {
        if (!writer.write(Buffer.alloc(1024 * 1024, 0x61))) await writer.drained();
      }
      writer.flush();
      await writer.drained(true);
    })().catch((e) => e);
    expect(error?.code).toBe('EPIPE');
    await writer.stop();
    closeFd(pipe.writeEnd);
    await exited;
  });

  it('an error thrown while handling a chunk fails the read', async () => {
    const [pipe] = (await makePipes(1))!;
    const { child, exited } = start('cat', [], ['pipe', pipe.writeEnd, 'ignore']);
    closeFd(pipe.writeEnd);
    // EPIPE once cat is killed below.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(randomBytes(3 * 1024 * 1024));
    const reader = new FdReader(pipe.readEnd, () => {
      throw new Error('refused');
    });
    await expect(reader.done).rejects.toThrow('refused');
    // The child may be blocked writing the rest: it is ended by its caller (as the restore kills igzip).
    child.kill();
    await exited;
    await reader.stop();
    closeFd(pipe.readEnd);
  });

  it('no pipes where they cannot be made (the caller then uses streams)', async () => {
    const tmp = process.env.TMPDIR;
    process.env.TMPDIR = '/nonexistent-lifeboat-folder';
    try {
      expect(await makePipes(2)).toBeNull();
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
    }
  });
});
