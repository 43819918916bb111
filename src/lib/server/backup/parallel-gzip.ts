import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { gzip } from 'node:zlib';

export interface ParallelGzipOptions {
  level?: number;
  chunkSize?: number;
  concurrency?: number;
}

// bench:backup prints the levels tried on its 1.1 GB demo database's dump (2 shared cores):
// zlib's levels 1-3 compress this text to within 1% of `gzip -6`'s size (1.005x) at about the same
// speed, level 4 is ~1.6x slower, 6 over 2x. Level 1 costs the least CPU, which pg_dump and its
// server process share with us. Members of 1 MiB compress as fast as 4 MiB ones and keep the
// peak RSS ~12 MiB lower; a backup's RSS growth is mostly the 64 KiB reads from pg_dump's pipe.
export const DEFAULT_GZIP_LEVEL = 1;
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
export const DEFAULT_CONCURRENCY = Math.min(availableParallelism() + 1, 8);
// zlib's largest hash table and pending buffer: a little faster and smaller at the fast levels, 128 KiB more per member.
const MEM_LEVEL = 9;

interface Member {
  out: Buffer | null;
}

/**
 * gzip as a Transform that compresses ~chunkSize pieces as independent gzip members on
 * libuv's thread pool and emits them in input order. Concatenated members are a valid
 * gzip file for gunzip, `gzip -t` and zlib.createGunzip().
 *
 * Input is copied into a few reused chunkSize buffers (concurrency + 1 at most), so a
 * long backup allocates almost nothing per chunk: fresh buffers cost page faults and
 * garbage collection on the main thread, which shares the cores with pg_dump and zlib.
 */
class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #chunkSize: number;
  readonly #concurrency: number;
  /** Input buffers no member uses any more. */
  #free: Buffer[] = [];
  /** The buffer being filled and how much of it is. */
  #fill: Buffer | null = null;
  #fillBytes = 0;
  /** What is left of the current write once the fill buffer is full and no member may start. */
  #rest: Buffer | null = null;
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
    this.#rest = chunk;
    this.#writeCallback = callback;
    this.#pump();
  }

  override _flush(callback: TransformCallback): void {
    this.#flushCallback = callback;
    this.#pump();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // zlib work already queued cannot be cancelled; its callbacks see `destroyed` and do nothing.
    this.#free = [];
    this.#fill = null;
    this.#rest = null;
    this.#members = [];
    this.#writeCallback = null;
    this.#flushCallback = null;
    callback(error);
  }

  #hasRoom(): boolean {
    return this.#members.length < this.#concurrency;
  }

  #pump(): void {
    if (this.destroyed) return;
    while (this.#rest && this.#rest.length > 0) {
      if (this.#fillBytes === this.#chunkSize) {
        if (!this.#hasRoom()) break;
        this.#startFill();
      }
      this.#fill ??= this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#chunkSize);
      const bytes = Math.min(this.#rest.length, this.#chunkSize - this.#fillBytes);
      this.#rest.copy(this.#fill, this.#fillBytes, 0, bytes);
      this.#fillBytes += bytes;
      this.#rest = bytes === this.#rest.length ? null : this.#rest.subarray(bytes);
    }
    // A full chunk starts at once when it may, so compression never waits for the next write.
    if (this.#fillBytes === this.#chunkSize && this.#hasRoom()) this.#startFill();
    if (this.#writeCallback && !this.#rest) {
      const callback = this.#writeCallback;
      this.#writeCallback = null;
      callback();
    }
    if (this.#flushCallback && !this.#rest) {
      // The last partial chunk; an empty input still gets one (empty) member, so the file is valid gzip.
      if ((this.#fillBytes > 0 || this.#started === 0) && this.#hasRoom()) this.#startFill();
      if (this.#fillBytes === 0 && this.#started > 0 && this.#members.length === 0) {
        const callback = this.#flushCallback;
        this.#flushCallback = null;
        callback();
      }
    }
  }

  #startFill(): void {
    const input = this.#fill ?? Buffer.alloc(0);
    const bytes = this.#fillBytes;
    this.#fill = null;
    this.#fillBytes = 0;
    const member: Member = { out: null };
    this.#members.push(member);
    this.#started++;
    // An output buffer near the compressed size makes a member one thread-pool round trip.
    const outChunk = Math.max(64 * 1024, Math.min(bytes, 1024 * 1024));
    gzip(input.subarray(0, bytes), { level: this.#level, memLevel: MEM_LEVEL, chunkSize: outChunk }, (error, out) => {
      if (this.destroyed) return;
      if (error) {
        this.destroy(error);
        return;
      }
      // zlib is done with the input: the buffer can take the next chunk.
      if (input.length === this.#chunkSize) this.#free.push(input);
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

/** Pass-through that reports the running byte total, for progress, and shows each chunk to `onChunk` (hashing, counting rows). */
export function bytesCounter(onBytes: (total: number) => void, onChunk?: (chunk: Buffer) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      total += chunk.length;
      onBytes(total);
      onChunk?.(chunk);
      callback(null, chunk);
    },
  });
}
