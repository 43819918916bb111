import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { bytesCounter, createParallelGzip } from '../backup/parallel-gzip';
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
}

/** pg_dump of one database, streamed through parallel gzip into a file. Child processes and files only, no rules. */
export class DumpRepository {
  async dumpToFile(options: DumpToFileOptions): Promise<void> {
    const args = [...connectionArgs(options.connection), '--clean', '--if-exists', '--no-password'];
    const dump = startChild(options.pgDump, args, {
      env: childEnv(options.connection),
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: options.signal,
      timeoutMs: options.timeoutMs,
    });
    const written = pipeline(
      dump.child.stdout!,
      createParallelGzip(),
      bytesCounter((total) => options.onBytes?.(total)),
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
  }
}
