import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Duplex } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { createGunzip } from 'node:zlib';
import { ChildProcessError, startChild } from './child';

/**
 * igzip, from Intel's ISA-L (Debian: `apt-get install isal`), writes the same .gz format as gzip
 * (one member, readable by plain gunzip) at several times zlib's speed: on bench:backup's 927 MiB
 * dump, level 1 takes ~1.1 s of one core for 161 MiB where zlib's level 1 takes ~6 s of CPU for
 * 157 MiB. A backup shares two cores with pg_dump and its server process, so that CPU is its time.
 * Only for compressing our own output: every gzip a file is checked or read with stays zlib's, so
 * a crafted file never meets two decompressors that might disagree.
 */
export const IGZIP_LEVEL = 1;
/** Stdin to stdout; no name or time in the header (there is none for stdin anyway). */
export const IGZIP_ARGS = [`-${IGZIP_LEVEL}`, '-c', '-n'];

/** `BACKUP_COMPRESSOR`: "auto" (igzip when installed, else zlib), "zlib", or a path to igzip. */
export function findIgzip(setting: string | undefined, path = process.env.PATH ?? ''): string | null {
  const wanted = (setting ?? 'auto').trim();
  if (wanted === 'zlib') return null;
  if (wanted !== '' && wanted !== 'auto') return wanted;
  for (const dir of [...path.split(delimiter), '/usr/bin', '/usr/local/bin']) {
    if (!dir) continue;
    const candidate = join(dir, 'igzip');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

export interface ChildCompressor {
  /** Uncompressed bytes in, one gzip member out. */
  stream: Duplex;
  /** Settles when the child exited: rejects on a non-zero exit, a kill or a failure to start. */
  done: Promise<void>;
}

/** `igzip -1 -c` as a stream; the child is killed when the signal aborts or the stream is destroyed. */
export function igzipStream(igzip: string, signal?: AbortSignal): ChildCompressor {
  return childStream(igzip, IGZIP_ARGS, signal);
}

function childStream(igzip: string, args: string[], signal?: AbortSignal): ChildCompressor {
  const managed = startChild(igzip, args, { stdio: ['pipe', 'pipe', 'pipe'], signal });
  const stream = Duplex.from({ writable: managed.child.stdin!, readable: managed.child.stdout! });
  // Destroyed before its output ended (the pipeline failed elsewhere): the child must not linger. After a normal end it exits by itself.
  stream.once('close', () => {
    if (!stream.readableEnded) managed.kill('the compression was stopped');
  });
  // A failed start or a crash fails the stream, so the pipeline around it stops.
  managed.done.catch((error: Error) => stream.destroy(error));
  return { stream, done: managed.done };
}

/**
 * The text of a .sql.gz for a restore or a drill: igzip (`-d -c`, about twice zlib's speed) for a
 * file whose bytes are proven, before anything is committed or swapped in, to be the ones zlib
 * verified (`trusted`: its manifest says verified and the caller compares the SHA-256 of what it
 * read): for a stream zlib accepts whole, both give the same text. Anything else: zlib. `done`
 * settles when igzip exited; wait for it before committing, as igzip checks the CRC after its output.
 */
export function inflateStream(igzip: string | null, trusted: boolean, signal?: AbortSignal): ChildCompressor {
  if (!igzip || !trusted) return { stream: createGunzip({ chunkSize: 256 * 1024 }), done: Promise.resolve() };
  return childStream(igzip, ['-d', '-c'], signal);
}

/** A gzip error from either inflater (zlib's Z_* codes, igzip's exit): the file is damaged. */
export function isInflateError(error: unknown): boolean {
  return !!(error as { code?: string }).code?.startsWith('Z_') || (error instanceof ChildProcessError && /^igzip /.test(error.message));
}

/** What IgzipCheck found: intact, broken (with why), or undecided (zlib must read the file to tell). */
export type IgzipVerdict = { intact: true; uncompressedSize: number } | { intact: false; error: Error } | { intact: null; reason: string };

const SLICE = 1024 * 1024;
/** Slices of an upload that may wait for igzip: the memory an upload holds beside its transfer. */
const MAX_SLICES = 8;

// The worker's side (plain JS, evaluated: no file for the bundler to find): it feeds igzip and
// reads its output, so the thousands of pipe writes and reads of a large upload do not take
// turns with the transfer on the main thread.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { spawn } = require('node:child_process');
const child = spawn(workerData.igzip, ['-d', '-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
// wc counts what igzip inflates: 1.4 GB for a 1 GiB upload never enters this process.
const wc = spawn('wc', ['-c'], { stdio: [child.stdout, 'pipe', 'ignore'] });
child.stdout.destroy();
let stderr = '', count = '', failed = null, exits = 0, code = null, signal = null, wcCode = null;
child.on('error', (error) => (failed = error.message));
wc.on('error', (error) => (failed = error.message));
child.stdin.on('error', () => undefined);
child.stderr.setEncoding('utf8');
child.stderr.on('data', (chunk) => { if (stderr.length < 4096) stderr += chunk; });
wc.stdout.setEncoding('utf8');
wc.stdout.on('data', (chunk) => (count += chunk));
const report = () => ++exits === 2 && parentPort.postMessage({ type: 'done', code, signal, wcCode, out: Number.parseInt(count, 10), stderr, failed });
child.on('close', (c, s) => { code = c; signal = s; report(); });
wc.on('close', (c) => { wcCode = c; report(); });
parentPort.on('message', (m) => {
  if (m.type === 'piece') child.stdin.write(Buffer.from(m.buffer, 0, m.length), () => parentPort.postMessage({ type: 'free', buffer: m.buffer }, [m.buffer]));
  else if (m.type === 'end') child.stdin.end();
  else if (m.type === 'kill') { child.kill('SIGKILL'); wc.kill('SIGKILL'); }
});
`;

interface WorkerDone {
  code: number | null;
  signal: string | null;
  wcCode: number | null;
  out: number;
  stderr: string;
  failed: string | null;
}

/**
 * The whole-file gzip check of an upload: `igzip -d -c` (about twice zlib's inflate speed) fed as
 * the bytes arrive, from a worker thread, on another core than the transfer. igzip stops quietly
 * at bytes after the last member that are not another member, where zlib (which every later
 * reading uses) fails: so a file counts as intact only when it is one member ending exactly at
 * the file's end, its trailer's length field (the last 4 bytes) being the length of everything
 * igzip inflated (igzip checked each member's CRC-32 itself). Bytes after the end rarely end in
 * that number (1 in 2^32); a file forged to is stored, and the verification that follows every
 * upload (zlib, as the restore reads) finds it corrupted, so it cannot be restored.
 * Anything else (several members, bytes after the end) is undecided here, and the caller has
 * zlib read the file.
 */
export class IgzipCheck {
  readonly #worker: Worker;
  readonly #done: Promise<WorkerDone>;
  #free: ArrayBuffer[] = [];
  #slices = 0;
  #fill: Buffer | null = null;
  #fillBytes = 0;
  #waiting: (() => void) | null = null;
  /** The last 8 bytes fed: the trailer, if the file is one member that ends there. */
  #tail: Buffer = Buffer.alloc(0);
  #inBytes = 0;
  #stopped = false;
  /** igzip (and wc) exited: no more input is taken. */
  #exited = false;

  constructor(igzip: string) {
    // A small heap: the worker only moves buffers (the RSS an upload may add is bounded).
    this.#worker = new Worker(WORKER, { eval: true, workerData: { igzip }, resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 } });
    this.#done = new Promise((resolve) => {
      this.#worker.on('message', (message: { type: string; buffer?: ArrayBuffer } & WorkerDone) => {
        if (message.type === 'free') {
          this.#free.push(message.buffer!);
          const waiting = this.#waiting;
          this.#waiting = null;
          waiting?.();
        } else if (message.type === 'done') resolve(message);
      });
      this.#worker.on('error', (error) => resolve({ code: null, signal: null, wcCode: null, out: 0, stderr: '', failed: error.message }));
      this.#worker.on('exit', () => resolve({ code: null, signal: null, wcCode: null, out: 0, stderr: '', failed: 'the check stopped' }));
    });
    this.#done.finally(() => {
      // Exited before its input ended (igzip stops at bytes after the last member): slices sent now would never come back.
      this.#exited = true;
      const waiting = this.#waiting;
      this.#waiting = null;
      waiting?.();
      void this.#worker.terminate();
    });
  }

  /** Takes a piece of the file (copied); false when igzip is MAX_SLICES behind, and then `onRoom` is called once it caught up. */
  feed(piece: Buffer, onRoom: () => void): boolean {
    this.#inBytes += piece.length;
    this.#tail = piece.length >= 8 ? Buffer.from(piece.subarray(-8)) : Buffer.concat([this.#tail, piece]).subarray(-8);
    return this.#push(piece, onRoom);
  }

  #push(piece: Buffer, onRoom: () => void): boolean {
    // Stopped, or igzip stopped reading (bytes after the last member): the rest only counts for the trailer, and zlib will decide.
    if (this.#stopped || this.#exited) return true;
    let offset = 0;
    while (offset < piece.length) {
      if (!this.#fill) {
        const free = this.#free.pop();
        if (!free && this.#slices >= MAX_SLICES) {
          const rest = piece.subarray(offset);
          this.#waiting = () => {
            if (this.#push(rest, onRoom)) onRoom();
          };
          return false;
        }
        if (!free) this.#slices++;
        this.#fill = Buffer.from(free ?? new ArrayBuffer(SLICE));
        this.#fillBytes = 0;
      }
      const bytes = piece.copy(this.#fill, this.#fillBytes, offset);
      this.#fillBytes += bytes;
      offset += bytes;
      if (this.#fillBytes === SLICE) this.#send();
    }
    return true;
  }

  async finish(): Promise<IgzipVerdict> {
    if (!this.#stopped) {
      this.#send();
      this.#worker.postMessage({ type: 'end' });
    }
    const done = await this.#done;
    if (done.failed || done.code !== 0) {
      const why = done.failed ?? (done.stderr.trim().replace(/^igzip: /, '').replace(/\(null\) /, '') || `igzip exited with ${done.code ?? done.signal}`);
      return { intact: false, error: new Error(why) };
    }
    if (done.wcCode !== 0 || !Number.isSafeInteger(done.out)) return { intact: false, error: new Error('the inflated bytes could not be counted') };
    const oneMember = this.#inBytes >= 18 && this.#tail.readUInt32LE(4) === done.out % 2 ** 32;
    return oneMember ? { intact: true, uncompressedSize: done.out } : { intact: null, reason: 'several gzip members, or bytes after the end' };
  }

  /** An aborted upload: igzip and the worker are stopped. */
  destroy(): void {
    this.#stopped = true;
    this.#waiting = null;
    this.#worker.postMessage({ type: 'kill' });
  }

  #send(): void {
    const slice = this.#fill;
    const bytes = this.#fillBytes;
    this.#fill = null;
    this.#fillBytes = 0;
    if (!slice) return;
    if (bytes === 0 || this.#exited) {
      this.#free.push(slice.buffer as ArrayBuffer);
      return;
    }
    const buffer = slice.buffer as ArrayBuffer;
    this.#worker.postMessage({ type: 'piece', buffer, length: bytes }, [buffer]);
  }
}
