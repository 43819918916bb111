import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import multer from 'multer';

/** What the storage learnt while the file streamed in: null when the gzip was intact, the error otherwise. */
export interface GzipChecked {
  gzipError?: Error | null;
}

/**
 * A tap that decompresses (and discards) what passes through it, with backpressure, so a
 * gzip's integrity is known as soon as its last byte is stored: no second read of a large
 * file after the upload, while the client (and any proxy in between) waits for an answer.
 */
function gzipTap(): { tap: Transform; result: () => Error | null } {
  const gunzip = createGunzip();
  let failure: Error | null = null;
  gunzip.on('error', (error) => (failure ??= error));
  gunzip.resume();
  // Continue once gunzip takes more input, or once it failed (then it never drains).
  const whenReady = (callback: () => void) => {
    const done = () => {
      gunzip.off('drain', done);
      gunzip.off('error', done);
      callback();
    };
    gunzip.once('drain', done);
    gunzip.once('error', done);
  };
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      if (failure || gunzip.write(chunk)) return callback(null, chunk);
      whenReady(() => callback(null, chunk));
    },
    flush(callback: TransformCallback) {
      if (failure) return callback();
      gunzip.once('end', () => callback());
      gunzip.once('error', () => callback());
      gunzip.end();
    },
    destroy(error, callback) {
      gunzip.destroy();
      callback(error);
    },
  });
  return { tap, result: () => failure };
}

/** multer's disk storage, checking each .gz file's whole gzip stream on the way to disk. */
export function checkingDiskStorage(options: multer.DiskStorageOptions): multer.StorageEngine {
  const disk = multer.diskStorage(options);
  return {
    _handleFile(req, file, callback) {
      if (!/\.gz$/i.test(file.originalname)) return disk._handleFile(req, file, callback);
      const source = file.stream;
      const { tap, result } = gzipTap();
      source.on('error', (error) => tap.destroy(error));
      Object.defineProperty(file, 'stream', { configurable: true, enumerable: false, value: source.pipe(tap) });
      disk._handleFile(req, file, (error, info) => {
        if (error) return callback(error);
        // The disk write finished, so the tap has flushed: the result is final.
        callback(null, { ...info, gzipError: result() } as Partial<Express.Multer.File> & GzipChecked);
      });
    },
    _removeFile: (req, file, callback) => disk._removeFile(req, file, callback),
  };
}
