import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { gzip } from 'node:zlib';

export interface ParallelGzipOptions {
  level?: number;
  chunkSize?: number;
  concurrency?: number;
}

// Measured on a 2-core machine: a 200 MiB PostgreSQL 15 database shaped like Immich's
// (COPY rows of uuids, upload/<uuid>/ab/cd/<uuid>.jpg paths, timestamps, base64 checksums,
// names, embeddings), `pg_dump | gzip -6` against pg_dump piped through this stream:
//   pg_dump | gzip -6   8.99 s  69.1 MiB
//   level 1             1.92 s  74.8 MiB  0.21x time  1.08x size
//   level 2             1.97 s  73.5 MiB  0.22x time  1.06x size
//   level 3             2.05 s  71.8 MiB  0.23x time  1.04x size
//   level 4             2.22 s  71.8 MiB  0.25x time  1.04x size
//   level 5             2.81 s  68.3 MiB  0.31x time  0.99x size
//   level 6             3.72 s  67.4 MiB  0.41x time  0.98x size
// (pg_dump alone: 1.2 s. Compression only, bench/gzip-levels.ts: gzip -6 8.7 s, level 3 1.6 s.)
// Level 3 is the knee: the best size of zlib's fast levels (1-3) at nearly level 1's speed,
// leaving headroom under the 0.5x target when pg_dump and the server share the two cores.
export const DEFAULT_GZIP_LEVEL = 3;
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
// One more than the cores so a finished member's slot is refilled while the others run.
export const DEFAULT_CONCURRENCY = Math.min(availableParallelism() + 1, 8);

interface Member {
  out: Buffer | null;
}

/**
 * gzip as a Transform that compresses ~chunkSize pieces as independent gzip members on
 * libuv's thread pool and emits them in input order. Concatenated members are a valid
 * gzip file for gunzip, `gzip -t` and zlib.createGunzip().
 */
class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #chunkSize: number;
  readonly #concurrency: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  // In-flight and finished-but-not-yet-emitted members, oldest first.
  #members: Member[] = [];
  #started = 0;
  // Held write callback: not calling it is what applies backpressure upstream.
  #writeCallback: TransformCallback | null = null;
  #flushCallback: TransformCallback | null = null;

  constructor(options: ParallelGzipOptions) {
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    // Room for about one chunk of output, or every member would wait for the reader.
    super({ readableHighWaterMark: chunkSize });
    if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new RangeError(`Invalid chunkSize: ${chunkSize}`);
    const level = options.level ?? DEFAULT_GZIP_LEVEL;
    // zlib would throw this from inside a write instead of failing the stream.
    if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`Invalid gzip level: ${level}`);
    this.#chunkSize = chunkSize;
    this.#level = level;
    this.#concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_CONCURRENCY));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    this.#writeCallback = callback;
    this.#pump();
  }

  override _flush(callback: TransformCallback): void {
    this.#flushCallback = callback;
    this.#pump();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // zlib work already queued cannot be cancelled; its callbacks see `destroyed` and do nothing.
    this.#pending = [];
    this.#members = [];
    this.#writeCallback = null;
    this.#flushCallback = null;
    callback(error);
  }

  // A full readable side needs no check here: Transform itself holds our write callback
  // until the reader catches up, so no new input arrives to start work with.
  #hasRoom(): boolean {
    return this.#members.length < this.#concurrency;
  }

  #pump(): void {
    if (this.destroyed) return;
    while (this.#hasRoom()) {
      if (this.#pendingBytes >= this.#chunkSize) this.#start(this.#cut(this.#chunkSize));
      // The last partial chunk; an empty input still gets one (empty) member, so the file is valid gzip.
      else if (this.#flushCallback && (this.#pendingBytes > 0 || this.#started === 0)) this.#start(this.#cut(this.#pendingBytes));
      else break;
    }
    if (this.#writeCallback && this.#pendingBytes < this.#chunkSize) {
      const callback = this.#writeCallback;
      this.#writeCallback = null;
      callback();
    }
    if (this.#flushCallback && this.#pendingBytes === 0 && this.#started > 0 && this.#members.length === 0) {
      const callback = this.#flushCallback;
      this.#flushCallback = null;
      callback();
    }
  }

  #cut(bytes: number): Buffer {
    const parts: Buffer[] = [];
    let needed = bytes;
    while (needed > 0) {
      const head = this.#pending[0];
      if (head.length <= needed) {
        parts.push(head);
        this.#pending.shift();
        needed -= head.length;
      } else {
        parts.push(head.subarray(0, needed));
        this.#pending[0] = head.subarray(needed);
        needed = 0;
      }
    }
    this.#pendingBytes -= bytes;
    // Always a copy: a writer may reuse its buffer once the write callback ran, before zlib reads it.
    return Buffer.concat(parts, bytes);
  }

  #start(input: Buffer): void {
    const member: Member = { out: null };
    this.#members.push(member);
    this.#started++;
    // A larger output buffer than zlib's 16 KiB default means fewer thread-pool round trips per member.
    gzip(input, { level: this.#level, chunkSize: 64 * 1024 }, (error, out) => {
      if (this.destroyed) return;
      if (error) {
        this.destroy(error);
        return;
      }
      member.out = out;
      this.#emitReady();
    });
  }

  #emitReady(): void {
    while (this.#members.length > 0 && this.#members[0].out) {
      this.push(this.#members.shift()!.out);
    }
    this.#pump();
  }
}

export function createParallelGzip(options: ParallelGzipOptions = {}): Transform {
  return new ParallelGzip(options);
}

/** Pass-through that reports the running byte total, for progress. */
export function bytesCounter(onBytes: (total: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      total += chunk.length;
      onBytes(total);
      callback(null, chunk);
    },
  });
}
