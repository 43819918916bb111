import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { bytesCounter, createParallelGzip, type ParallelGzipOptions } from '../backup/parallel-gzip';
import { childEnv, connectionArgs, type ConnectionOptions } from '../db/connection';
import { startChild, type ManagedChild } from '../process/child';
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
  /** Sees the file's bytes as they go to disk: the manifest's SHA-256. */
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
    const dump = startChild(options.pgDump, pgDumpArgs(options.connection), {
      env: childEnv(options.connection),
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: options.signal,
      timeoutMs: options.timeoutMs,
    });
    const children: ManagedChild[] = [dump];
    let dumpBytes: number | null = 0;
    let fileBytes = 0;
    let compressed: Readable[];
    let compressorDone: Promise<void> = Promise.resolve();
    if (options.compress !== false && this.igzip && !options.gzip && !options.onDumpChunk) {
      // Nobody here needs the text: igzip reads pg_dump's output itself. Passing 927 MiB through
      // this process cost a second of its CPU, on two cores shared with pg_dump and its server.
      const gzip = startChild(this.igzip, IGZIP_ARGS, { stdio: [dump.child.stdout!, 'pipe', 'pipe'], signal: options.signal, timeoutMs: options.timeoutMs });
      // igzip must be pg_dump's only reader: with this end open too, pg_dump would block, not fail, if igzip died.
      dump.child.stdout!.destroy();
      children.push(gzip);
      compressed = [gzip.child.stdout!];
      dumpBytes = null;
    } else {
      const compressor = options.compress === false ? { stream: new PassThrough(), done: Promise.resolve() } : this.compressor(options);
      compressorDone = compressor.done;
      compressed = [dump.child.stdout!, bytesCounter((total) => (dumpBytes = total), options.onDumpChunk), compressor.stream];
    }
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
    const written = Promise.all([piped, compressorDone]).then(() => undefined);
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
    if (dumpBytes === 0 || (dumpBytes === null && (await gzipHoldsNothing(options.path)))) throw new Error('pg_dump exited successfully but wrote nothing');
    return { dumpBytes, fileBytes };
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

/** One gzip member whose trailer says it holds 0 bytes (ISIZE, the last 4 bytes): igzip's output for empty input. */
async function gzipHoldsNothing(path: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    // A header (10) and a trailer (8) at least; anything longer than an empty member's ~23 bytes held text.
    if (size > 64) return false;
    const trailer = Buffer.alloc(4);
    await file.read(trailer, 0, 4, Math.max(0, size - 4));
    return size < 18 || trailer.readUInt32LE(0) === 0;
  } finally {
    await file.close();
  }
}
