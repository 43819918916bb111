import { execFile } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

const execFileAsync = promisify(execFile);

/**
 * Moving a gigabyte between two children through this process's streams costs it 2.5 to 4
 * core-seconds (a Buffer per 64 KiB read, whose garbage V8 collects with the app's whole heap;
 * the stream machinery per chunk), on a machine where the restore's server process needs a core
 * to itself. Here the bytes go through pipes of our own (FIFOs, opened blocking), read and
 * written by two small worker threads with blocking calls into 1 MiB buffers that circulate: the
 * event loop sees a few messages per MiB and nothing is allocated per chunk (2.2 to 2.7
 * core-seconds for the 1 GB demo dump, most of it the kernel's copies).
 */

/** Both ends of a pipe, blocking and close-on-exec (libuv opens every file so): a child given one in `stdio` gets only that. */
export interface Pipe {
  readEnd: number;
  writeEnd: number;
}

/** `count` pipes (FIFOs, unlinked as soon as both ends are open); null where they cannot be made (no mkfifo, no temporary folder). */
export async function makePipes(count: number): Promise<Pipe[] | null> {
  let folder: string | null = null;
  const pipes: Pipe[] = [];
  const opened: number[] = [];
  try {
    folder = await mkdtemp(join(tmpdir(), 'lifeboat-pipe-'));
    const paths = Array.from({ length: count }, (_, i) => join(folder!, `p${i}`));
    await execFileAsync('mkfifo', ['-m', '600', ...paths]);
    for (const path of paths) {
      // Opening one end of a FIFO blocks until the other is open: a read-write descriptor (never
      // blocks) lets both blocking ends open at once; then it goes, so EOF and EPIPE work.
      const both = openSync(path, constants.O_RDWR);
      try {
        const readEnd = openSync(path, constants.O_RDONLY);
        opened.push(readEnd);
        const writeEnd = openSync(path, constants.O_WRONLY);
        opened.push(writeEnd);
        pipes.push({ readEnd, writeEnd });
      } finally {
        closeSync(both);
      }
    }
    return pipes;
  } catch {
    for (const fd of opened) closeFd(fd);
    return null;
  } finally {
    if (folder) await rm(folder, { recursive: true, force: true });
  }
}

export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

const READER = `
const { parentPort, workerData } = require('node:worker_threads');
const { readSync } = require('node:fs');
parentPort.on('message', (buffer) => {
  const view = new Uint8Array(buffer);
  let n = 0;
  try {
    // Fill the buffer (a pipe gives at most 64 KiB per read), or stop at the end.
    for (;;) {
      const got = readSync(workerData.fd, view, n, view.length - n, null);
      if (got === 0 || (n += got) === view.length) break;
    }
  } catch (error) {
    parentPort.postMessage({ error: error.message });
    return;
  }
  parentPort.postMessage({ buffer, n, end: n < view.length }, [buffer]);
});
`;

const WRITER = `
const { parentPort, workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
parentPort.on('message', ({ buffer, n }) => {
  const view = new Uint8Array(buffer, 0, n);
  try {
    for (let at = 0; at < n; ) at += writeSync(workerData.fd, view, at, n - at, null);
  } catch (error) {
    parentPort.postMessage({ error: error.code ?? error.message });
    return;
  }
  parentPort.postMessage({ buffer }, [buffer]);
});
`;

const LIMITS = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 8 };
const CHUNK = 1024 * 1024;

/**
 * Reads `fd` to its end in CHUNK-sized buffers, `depth` of them in flight: `onChunk` gets each
 * (valid until it returns: copy what must be kept), then the buffer goes back to be refilled.
 * `pause()`/`resume()` hold the buffers back (backpressure).
 */
export class FdReader {
  readonly #worker: Worker;
  readonly #queued: { buffer: ArrayBuffer; n: number; end: boolean }[] = [];
  #paused = false;
  #ended = false;
  #fail: (error: Error) => void = () => undefined;
  #finish: () => void = () => undefined;
  readonly done: Promise<void>;

  constructor(
    fd: number,
    private readonly onChunk: (chunk: Buffer) => void,
    depth = 3,
  ) {
    this.#worker = new Worker(READER, { eval: true, workerData: { fd }, resourceLimits: LIMITS });
    this.#worker.unref();
    this.done = new Promise((resolve, reject) => {
      this.#fail = reject;
      this.#finish = resolve;
      this.#worker.on('error', reject);
      this.#worker.on('message', (message: { error?: string; buffer: ArrayBuffer; n: number; end: boolean }) => {
        if (message.error) {
          this.#ended = true;
          return reject(new Error(`reading the pipe failed: ${message.error}`));
        }
        this.#queued.push(message);
        this.#drain();
      });
    });
    this.done.catch(() => undefined);
    for (let i = 0; i < depth; i++) {
      const buffer = new ArrayBuffer(CHUNK);
      this.#worker.postMessage(buffer, [buffer]);
    }
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#drain();
  }

  /** Resolves once the thread stopped: only then may its descriptor be closed (it may be in a read of it until then). */
  async stop(): Promise<void> {
    await this.#worker.terminate();
  }

  #drain(): void {
    while (!this.#paused && !this.#ended && this.#queued.length) {
      const { buffer, n, end } = this.#queued.shift()!;
      try {
        if (n > 0) this.onChunk(Buffer.from(buffer, 0, n));
      } catch (error) {
        this.#ended = true;
        this.#fail(error as Error);
        return;
      }
      if (end) {
        this.#ended = true;
        this.#finish();
        return;
      }
      this.#worker.postMessage(buffer, [buffer]);
    }
  }
}

/**
 * Writes to `fd` in order what `write` is given (copied into CHUNK-sized buffers that circulate).
 * `write` returns false when more than `depth` buffers wait: wait for `drained()` then.
 * A closed reader (EPIPE) rejects `failed`.
 */
export class FdWriter {
  readonly #worker: Worker;
  readonly #pool: ArrayBuffer[] = [];
  #current: ArrayBuffer | null = null;
  #used = 0;
  #inFlight = 0;
  #waiters: (() => void)[] = [];
  #error: Error | null = null;
  readonly failed: Promise<never>;

  constructor(
    fd: number,
    private readonly depth = 3,
  ) {
    this.#worker = new Worker(WRITER, { eval: true, workerData: { fd }, resourceLimits: LIMITS });
    this.#worker.unref();
    this.failed = new Promise<never>((_, reject) => {
      const fail = (error: Error) => {
        this.#error ??= error;
        reject(error);
        this.#wake();
      };
      this.#worker.on('error', fail);
      this.#worker.on('message', (message: { error?: string; buffer: ArrayBuffer }) => {
        if (message.error) return fail(Object.assign(new Error(`writing the pipe failed: ${message.error}`), { code: message.error }));
        this.#inFlight--;
        this.#pool.push(message.buffer);
        this.#wake();
      });
    });
    this.failed.catch(() => undefined);
  }

  /** Copies `bytes` out; sends full buffers. False: the caller should wait for drained() (which rejects once a write failed). */
  write(bytes: Buffer | string): boolean {
    const data = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    for (let at = 0; at < data.length && !this.#error; ) {
      this.#current ??= this.#pool.pop() ?? new ArrayBuffer(CHUNK);
      const copied = data.copy(new Uint8Array(this.#current), this.#used, at);
      this.#used += copied;
      at += copied;
      if (this.#used === CHUNK) this.flush();
    }
    return !this.#error && this.#inFlight < this.depth;
  }

  /** Sends what is buffered (dropped once a write failed: nothing after it may reach the reader). */
  flush(): void {
    if (!this.#current || this.#used === 0) return;
    const [buffer, n] = [this.#current, this.#used];
    this.#current = null;
    this.#used = 0;
    if (this.#error) return;
    this.#worker.postMessage({ buffer, n }, [buffer]);
    this.#inFlight++;
  }

  /** Resolves when at most `depth` buffers (0 with `all`) wait to be written; rejects on a failed write. */
  async drained(all = false): Promise<void> {
    while (!this.#error && this.#inFlight > (all ? 0 : this.depth - 1)) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    if (this.#error) throw this.#error;
  }

  get busy(): boolean {
    return this.#inFlight >= this.depth;
  }

  /** Resolves once the thread stopped: only then may its descriptor be closed (it may be in a write to it until then). */
  async stop(): Promise<void> {
    await this.#worker.terminate();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}
