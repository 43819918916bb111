import { createReadStream, createWriteStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { bytesCounter, createParallelGzip, type ParallelGzipOptions } from '../backup/parallel-gzip';
import { childEnv, connectionArgs, type ConnectionOptions } from '../db/connection';
import { startChild, type ChildProcessError, type ManagedChild } from '../process/child';
import { IGZIP_ARGS, igzipStream, type ChildCompressor } from '../process/igzip';

export interface DumpToFileOptions {
  pgDump: string;
  connection: ConnectionOptions;
  /** The .tmp path; created exclusively, never an existing file. */
  path: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Compressed bytes written so far. */
  onBytes?: (bytes: number) => void;
  gzip?: ParallelGzipOptions;
  /** false writes plain SQL: no compression CPU, for the restore point on the restore's critical path. */
  compress?: boolean;
  /** Sees pg_dump's output (the SQL text) as it goes by: the manifest's row counts. */
  onDumpChunk?: (chunk: Buffer) => void;
  /** Sees the file's bytes as they go to disk (or, with igzip, read back once written): the manifest's SHA-256. Use each chunk before returning: its buffer is reused. */
  onFileChunk?: (chunk: Buffer) => void;
}

export interface DumpResult {
  /** Bytes pg_dump wrote (uncompressed SQL); null when igzip read them and this process did not. */
  dumpBytes: number | null;
  /** Bytes written to the file. */
  fileBytes: number;
}

/** The pg_dump arguments: connection (never the password), then a plain SQL dump that drops before it creates. */
export function pgDumpArgs(connection: ConnectionOptions): string[] {
  return [...connectionArgs(connection), '--clean', '--if-exists', '--no-password'];
}

/** pg_dump of one database, streamed through gzip into a file. Child processes and files only, no rules. */
export class DumpRepository {
  /** @param igzip igzip's path (see process/igzip.ts): compresses with it; null: zlib's parallel gzip, in this process. */
  constructor(private readonly igzip: string | null = null) {}

  /** A compressed dump goes from pg_dump to igzip without passing through this process: its text is not seen here. */
  get compressesOutside(): boolean {
    return this.igzip !== null;
  }

  /** The compressor of one file; `done` settles when a child compressor exited. */
  private compressor(options: { gzip?: ParallelGzipOptions; signal?: AbortSignal }): ChildCompressor {
    // Options for zlib (a test's small members) ask for zlib.
    if (this.igzip && !options.gzip) return igzipStream(this.igzip, options.signal);
    return { stream: createParallelGzip(options.gzip), done: Promise.resolve() };
  }

  async dumpToFile(options: DumpToFileOptions): Promise<DumpResult> {
    if (options.compress !== false && this.igzip && !options.gzip && !options.onDumpChunk) return this.dumpThroughIgzip(this.igzip, options);
    const dump = startDump(options);
    const children: ManagedChild[] = [dump];
    let dumpBytes = 0;
    let fileBytes = 0;
    const compressor = options.compress === false ? { stream: new PassThrough(), done: Promise.resolve() } : this.compressor(options);
    const compressed: Readable[] = [dump.child.stdout!, bytesCounter((total) => (dumpBytes = total), options.onDumpChunk), compressor.stream];
    const piped = pipeline(
      [
        ...compressed,
        bytesCounter((total) => {
          fileBytes = total;
          options.onBytes?.(total);
        }, options.onFileChunk),
        createWriteStream(options.path, { flags: 'wx' }),
      ],
    );
    // The compressor's exit code counts too: its output may end before it reports a failure.
    const written = Promise.all([piped, compressor.done]).then(() => undefined);
    // A write failure (disk full) must stop pg_dump; a pg_dump failure must fail the backup
    // even though its stdout ended cleanly.
    written.catch((error) => children.forEach((child) => child.kill(`writing the backup failed: ${error.message}`)));
    const [pipeResult, ...exits] = await Promise.allSettled([written, ...children.map((child) => child.done)]);
    const failedExit = exits.find((exit) => exit.status === 'rejected');
    if (failedExit) {
      // The write error explains a kill better than "pg_dump was terminated".
      throw pipeResult.status === 'rejected' ? pipeResult.reason : failedExit.reason;
    }
    if (pipeResult.status === 'rejected') throw pipeResult.reason;
    // pg_dump always writes a header; exit 0 with nothing on stdout would be a 20-byte "backup".
    if (dumpBytes === 0) throw new Error('pg_dump exited successfully but wrote nothing');
    return { dumpBytes, fileBytes };
  }

  /**
   * pg_dump → igzip → cat → the file: no byte of the backup passes through this process (a
   * backup adds nothing to its memory: bench:backup's peak RSS went from ~140 to ~105 MiB, and
   * 0.3 s less). cat writes the file because it reports a failed write or close (a disk that
   * fills at the last block), where igzip's exit status does not. The file is then read back
   * once, through one buffer, for `onFileChunk`; progress is its size, polled.
   */
  private async dumpThroughIgzip(igzip: string, options: DumpToFileOptions): Promise<DumpResult> {
    // The file first: pg_dump starts only once there is somewhere to put its output.
    const file = await open(options.path, 'wx+');
    try {
      const dump = startDump(options);
      const spawnOptions = { signal: options.signal, timeoutMs: options.timeoutMs };
      const gzip = startChild(igzip, IGZIP_ARGS, { ...spawnOptions, stdio: [dump.child.stdout!, 'pipe', 'pipe'] });
      // Each pipe has one reader, so a writer whose reader died fails instead of blocking.
      dump.child.stdout!.destroy();
      const writer = startChild('cat', [], { ...spawnOptions, stdio: [gzip.child.stdout!, file.fd, 'pipe'] });
      gzip.child.stdout!.destroy();
      const children = [dump, gzip, writer];
      // The first to fail stops the others; its error is the backup's, unless the disk refused the writes (that explains everything).
      let first: unknown = null;
      for (const child of children) {
        child.done.catch((error) => {
          first ??= error;
          for (const other of children) other.kill('another step of the backup failed');
        });
      }
      const progress = options.onBytes
        ? setInterval(() => void file.stat().then(({ size }) => options.onBytes?.(size), () => undefined), 500)
        : null;
      const exits = await Promise.allSettled([writer.done, dump.done, gzip.done]).finally(() => progress && clearInterval(progress));
      if (exits.some((exit) => exit.status === 'rejected')) {
        const written = exits[0];
        const refused = written.status === 'rejected' ? writeRefused(written.reason) : null;
        throw refused ?? first ?? (exits.find((exit) => exit.status === 'rejected') as PromiseRejectedResult).reason;
      }
      let fileBytes = 0;
      const buffer = Buffer.allocUnsafe(1024 * 1024);
      for (;;) {
        const { bytesRead } = await file.read(buffer, 0, buffer.length, fileBytes);
        if (bytesRead === 0) break;
        options.onFileChunk?.(buffer.subarray(0, bytesRead));
        fileBytes += bytesRead;
      }
      options.onBytes?.(fileBytes);
      if (await gzipHoldsNothing(file, fileBytes)) throw new Error('pg_dump exited successfully but wrote nothing');
      return { dumpBytes: null, fileBytes };
    } finally {
      await file.close();
    }
  }

  /** Compresses a plain dump into `target` (created exclusively) with the same parallel gzip as backups. */
  async compressFile(source: string, target: string, signal?: AbortSignal, onFileChunk?: (chunk: Buffer) => void): Promise<void> {
    const compressor = this.compressor({ signal });
    await Promise.all([
      pipeline(
        createReadStream(source, { highWaterMark: 1024 * 1024 }),
        compressor.stream,
        bytesCounter(() => undefined, onFileChunk),
        createWriteStream(target, { flags: 'wx' }),
        { signal },
      ),
      compressor.done,
    ]);
  }
}

function startDump(options: DumpToFileOptions): ManagedChild {
  return startChild(options.pgDump, pgDumpArgs(options.connection), {
    env: childEnv(options.connection),
    stdio: ['ignore', 'pipe', 'pipe'],
    signal: options.signal,
    timeoutMs: options.timeoutMs,
  });
}

/** One gzip member whose trailer says it holds 0 bytes (ISIZE, the last 4 bytes): igzip's output for empty input. */
async function gzipHoldsNothing(file: FileHandle, size: number): Promise<boolean> {
  // A header (10) and a trailer (8) at least; anything longer than an empty member's ~23 bytes held text.
  if (size > 64) return false;
  const trailer = Buffer.alloc(4);
  await file.read(trailer, 0, 4, Math.max(0, size - 4));
  return size < 18 || trailer.readUInt32LE(0) === 0;
}

/** cat's "No space left on device" (or a denied write) as an error with the errno code the caller explains; null for any other failure. */
function writeRefused(error: unknown): Error | null {
  const text = ((error as ChildProcessError)?.stderr ?? '').trim();
  const code = /No space left on device/.test(text) ? 'ENOSPC' : /Permission denied/.test(text) ? 'EACCES' : /Read-only file system/.test(text) ? 'EROFS' : null;
  return code ? Object.assign(new Error(`${text} (${code})`, { cause: error }), { code }) : null;
}
