import { createReadStream, createWriteStream } from 'node:fs';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { bytesCounter, createParallelGzip, type ParallelGzipOptions } from '../backup/parallel-gzip';
import { childEnv, connectionArgs, type ConnectionOptions } from '../db/connection';
import { startChild } from '../process/child';

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
  /** Bytes pg_dump wrote (uncompressed SQL). */
  dumpBytes: number;
  /** Bytes written to the file. */
  fileBytes: number;
}

/** The pg_dump arguments: connection (never the password), then a plain SQL dump that drops before it creates. */
export function pgDumpArgs(connection: ConnectionOptions): string[] {
  return [...connectionArgs(connection), '--clean', '--if-exists', '--no-password'];
}

/** pg_dump of one database, streamed through parallel gzip into a file. Child processes and files only, no rules. */
export class DumpRepository {
  async dumpToFile(options: DumpToFileOptions): Promise<DumpResult> {
    const dump = startChild(options.pgDump, pgDumpArgs(options.connection), {
      env: childEnv(options.connection),
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: options.signal,
      timeoutMs: options.timeoutMs,
    });
    let dumpBytes = 0;
    let fileBytes = 0;
    const written = pipeline(
      dump.child.stdout!,
      bytesCounter((total) => (dumpBytes = total), options.onDumpChunk),
      options.compress === false ? new PassThrough() : createParallelGzip(options.gzip),
      bytesCounter((total) => {
        fileBytes = total;
        options.onBytes?.(total);
      }, options.onFileChunk),
      createWriteStream(options.path, { flags: 'wx' }),
    );
    // A write failure (disk full) must stop pg_dump; a pg_dump failure must fail the backup
    // even though its stdout ended cleanly.
    written.catch((error) => dump.kill(`writing the backup failed: ${error.message}`));
    const [pipeResult, exitResult] = await Promise.allSettled([written, dump.done]);
    if (exitResult.status === 'rejected') {
      // The write error explains a kill better than "pg_dump was terminated".
      throw pipeResult.status === 'rejected' ? pipeResult.reason : exitResult.reason;
    }
    if (pipeResult.status === 'rejected') throw pipeResult.reason;
    // pg_dump always writes a header; exit 0 with nothing on stdout would be a 20-byte "backup".
    if (dumpBytes === 0) throw new Error('pg_dump exited successfully but wrote nothing');
    return { dumpBytes, fileBytes };
  }

  /** Compresses a plain dump into `target` (created exclusively) with the same parallel gzip as backups. */
  async compressFile(source: string, target: string, signal?: AbortSignal, onFileChunk?: (chunk: Buffer) => void): Promise<void> {
    await pipeline(
      createReadStream(source, { highWaterMark: 1024 * 1024 }),
      createParallelGzip(),
      bytesCounter(() => undefined, onFileChunk),
      createWriteStream(target, { flags: 'wx' }),
      { signal },
    );
  }
}
