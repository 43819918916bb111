import { createReadStream } from 'node:fs';
import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { fileIsGzip } from '../backup/dump-sniff';
import { bytesCounter } from '../backup/parallel-gzip';

const PIECE = 1024 * 1024;

/** Reads a backup file once: its bytes as stored, and its SQL text (decompressed when it is gzip). Files and streams only. */
export class BackupReadRepository {
  /** Rejects with zlib's error (code Z_…) on damaged gzip data, or the read error. */
  async read(path: string, options: { onFileChunk?: (chunk: Buffer) => void; onTextChunk?: (chunk: Buffer) => void; signal?: AbortSignal }): Promise<void> {
    const gzip = await fileIsGzip(path);
    await pipeline(
      createReadStream(path, { highWaterMark: PIECE }),
      bytesCounter(() => undefined, options.onFileChunk),
      gzip ? createGunzip({ chunkSize: PIECE }) : new PassThrough(),
      new Writable({
        highWaterMark: 4 * PIECE,
        write(chunk: Buffer, _encoding, callback) {
          options.onTextChunk?.(chunk);
          callback();
        },
      }),
      { signal: options.signal },
    );
  }
}
