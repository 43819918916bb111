import { createGunzip, type Gunzip } from 'node:zlib';

export interface GzipCheckOptions {
  /** Input bytes gathered into one zlib call: fewer thread-pool round trips than the 64 KiB pieces a socket gives. */
  sliceSize?: number;
  /** How many slices may wait for zlib before feed() asks its caller to wait: the memory bound. */
  maxSlices?: number;
  /** Sees the decompressed text (an upload's manifest counts its rows); without it the output is dropped. */
  onOutput?: (chunk: Buffer) => void;
}

const DEFAULT_SLICE = 1024 * 1024;
const DEFAULT_MAX_SLICES = 16;
// zlib's output buffer: each time it fills, the thread pool hands back to the main thread, and
// inflating waits until that thread (parsing the upload) gets to it: a slice is ~2 round trips.
const OUTPUT_CHUNK = 1024 * 1024;

/**
 * Decompresses a gzip stream fed in pieces and discards the output, to prove the whole
 * archive intact (every member's deflate data, CRC-32 and length) while its bytes are still
 * arriving. The inflating runs on libuv's thread pool, on another core than the caller's;
 * the caller only copies its pieces into a few reused slices, and waits only when zlib is
 * more than maxSlices behind.
 */
export class GzipCheck {
  readonly #sliceSize: number;
  #free: Buffer[] = [];
  #slices = 0;
  readonly #maxSlices: number;
  #fill: Buffer | null = null;
  #fillBytes = 0;
  #waiting: (() => void) | null = null;
  #failure: Error | null = null;
  readonly #gunzip: Gunzip;
  readonly #done: Promise<Error | null>;

  constructor(options: GzipCheckOptions = {}) {
    this.#sliceSize = options.sliceSize ?? DEFAULT_SLICE;
    this.#maxSlices = Math.max(2, options.maxSlices ?? DEFAULT_MAX_SLICES);
    this.#gunzip = createGunzip({ chunkSize: OUTPUT_CHUNK });
    this.#done = new Promise((resolve) => {
      this.#gunzip.on('end', () => resolve(this.#failure));
      this.#gunzip.on('error', (error) => {
        this.#failure ??= error;
        resolve(this.#failure);
        this.#release();
      });
      this.#gunzip.on('close', () => resolve(this.#failure ?? new Error('the gzip check was stopped')));
    });
    // Flowing: the output is shown to onOutput, or dropped, as it is made.
    if (options.onOutput) this.#gunzip.on('data', options.onOutput);
    else this.#gunzip.resume();
  }

  /** The error found so far, if any: once set, the archive is known to be broken. */
  get failure(): Error | null {
    return this.#failure;
  }

  /**
   * Takes a piece of the archive (copied: the caller may reuse it). Returns true when more
   * may come at once; false when zlib is too far behind, and then `onRoom` is called later.
   */
  feed(piece: Buffer, onRoom: () => void): boolean {
    if (this.#failure) return true;
    let offset = 0;
    while (offset < piece.length) {
      if (!this.#fill) {
        const free = this.#free.pop();
        if (!free && this.#slices >= this.#maxSlices) {
          // Keep the rest for when a slice comes back.
          const rest = piece.subarray(offset);
          this.#waiting = () => {
            if (this.feed(rest, onRoom)) onRoom();
          };
          return false;
        }
        if (!free) this.#slices++;
        this.#fill = free ?? Buffer.allocUnsafeSlow(this.#sliceSize);
        this.#fillBytes = 0;
      }
      const bytes = piece.copy(this.#fill, this.#fillBytes, offset);
      this.#fillBytes += bytes;
      offset += bytes;
      if (this.#fillBytes === this.#sliceSize) this.#send();
    }
    return true;
  }

  /** Resolves when the whole archive was checked: null when intact, the error otherwise. */
  finish(): Promise<Error | null> {
    if (!this.#failure) {
      this.#send();
      this.#gunzip.end();
    }
    return this.#done;
  }

  /** Stops checking (an aborted upload); finish() then resolves with an error. */
  destroy(): void {
    this.#failure ??= new Error('the gzip check was stopped');
    this.#gunzip.destroy();
    this.#waiting = null;
  }

  #send(): void {
    const slice = this.#fill;
    const bytes = this.#fillBytes;
    this.#fill = null;
    this.#fillBytes = 0;
    if (!slice || bytes === 0 || this.#failure) {
      if (slice) this.#free.push(slice);
      return;
    }
    // The callback runs once zlib consumed the slice: only then may it be filled again.
    this.#gunzip.write(slice.subarray(0, bytes), () => {
      this.#free.push(slice);
      this.#release();
    });
  }

  #release(): void {
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.();
  }
}
