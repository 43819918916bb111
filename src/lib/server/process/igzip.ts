import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Duplex } from 'node:stream';
import { startChild } from './child';

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
  const managed = startChild(igzip, IGZIP_ARGS, { stdio: ['pipe', 'pipe', 'pipe'], signal });
  const stream = Duplex.from({ writable: managed.child.stdin!, readable: managed.child.stdout! });
  // Destroyed before its output ended (the pipeline failed elsewhere): the child must not linger. After a normal end it exits by itself.
  stream.once('close', () => {
    if (!stream.readableEnded) managed.kill('the compression was stopped');
  });
  // A failed start or a crash fails the stream, so the pipeline around it stops.
  managed.done.catch((error: Error) => stream.destroy(error));
  return { stream, done: managed.done };
}
