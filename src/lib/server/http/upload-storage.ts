import { createReadStream, createWriteStream, fdatasync, open, unlink } from 'node:fs';
import { basename, dirname } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type multer from 'multer';
import { GzipCheck } from '../backup/gzip-check';
import { IgzipCheck } from '../process/igzip';
import { DumpStats } from '../backup/dump-stats';
import { FileDigest, type UploadContents } from '../backup/manifest';

/** What the storage learnt while the file streamed in: null when the gzip was intact, the error otherwise; and what its manifest records. */
export interface GzipChecked {
  gzipError?: Error | null;
  contents?: UploadContents;
}


// Dirty pages written out while the upload runs, so the fsync before the rename finds little left to do.
const FLUSH_EVERY = 64 * 1024 * 1024;

/**
 * A pass-through that hands every piece to a GzipCheck as it goes by. The pieces go on to
 * disk at once: the check (on the thread pool) runs beside the transfer, not in front of
 * it, and holds the upload back only when it is more than its bounded queue behind.
 */
function gzipTap(check: GzipCheck | IgzipCheck | null, digest: FileDigest, stats: DumpStats): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      digest.update(chunk);
      // A plain .sql upload is its own text.
      if (!check) {
        stats.write(chunk);
        return callback(null, chunk);
      }
      if (check.feed(chunk, () => callback())) return callback(null, chunk);
      this.push(chunk);
    },
    destroy(error, callback) {
      // Also called after a normal end (autoDestroy): only a failure stops the check.
      if (error) check?.destroy();
      callback(error);
    },
  });
}

/** Counts what reaches the file and asks the kernel to write it out every FLUSH_EVERY bytes, one request at a time. */
function writeBehind(fd: number): Transform {
  let sinceFlush = 0;
  let flushing = false;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      sinceFlush += chunk.length;
      if (sinceFlush >= FLUSH_EVERY && !flushing) {
        sinceFlush = 0;
        flushing = true;
        // An error here (the fd closed by an abort) changes nothing: the final fsync decides.
        fdatasync(fd, () => (flushing = false));
      }
      callback(null, chunk);
    },
  });
}

/**
 * multer storage writing each file to a fresh path (created exclusively), as multer's disk
 * storage does, and checking a .gz file's whole gzip stream concurrently on the way; the
 * result is final when the file is.
 */
export function checkingDiskStorage(nextPath: () => string, databaseName: string, igzip: string | null = null): multer.StorageEngine {
  return {
    _handleFile(_req, file, callback) {
      (async () => {
        const path = nextPath();
        const fd = await new Promise<number>((resolve, reject) => open(path, 'wx', 0o600, (error, fd) => (error ? reject(error) : resolve(fd))));
        const out = createWriteStream(path, { fd });
        const flush = writeBehind(fd);
        // The manifest is learnt on the way: SHA-256 of the bytes, rows per table of the text.
        const digest = new FileDigest();
        const stats = new DumpStats(databaseName);
        const gzipName = /\.gz$/i.test(file.originalname);
        // igzip inflates about twice as fast as zlib, so the check keeps up with the transfer; zlib is the fallback.
        const check = !gzipName ? null : igzip ? new IgzipCheck(igzip) : new GzipCheck({ onOutput: (chunk) => stats.write(chunk) });
        try {
          await pipeline(file.stream, gzipTap(check, digest, stats), flush, out);
        } catch (error) {
          check?.destroy();
          throw error;
        }
        let gzipError: Error | null | undefined = undefined;
        let rowsPending = false;
        let uncompressedSize: number | null = null;
        if (check instanceof IgzipCheck) {
          const verdict = await check.finish();
          if (verdict.intact === true) {
            // The rows are counted by the verification that reads every upload back with zlib, as the restore will.
            rowsPending = true;
            uncompressedSize = verdict.uncompressedSize;
            gzipError = null;
          } else if (verdict.intact === false) gzipError = verdict.error;
          // Several members, or bytes after the end: zlib, which every later reading uses, decides.
          else gzipError = await checkWithZlib(path, stats);
        } else if (check) gzipError = await check.finish();
        const counted = stats.end();
        const contents: UploadContents = { sha256: digest.digest(), size: digest.size, stats: { ...counted, uncompressedSize: uncompressedSize ?? counted.uncompressedSize }, rowsPending };
        return { destination: dirname(path), filename: basename(path), path, size: out.bytesWritten, gzipError, contents } as Partial<Express.Multer.File> & GzipChecked;
      })().then(
        (info) => callback(null, info),
        (error: Error) => callback(error),
      );
    },
    _removeFile(_req, file, callback) {
      unlink(file.path, (error) => callback(error && error.code !== 'ENOENT' ? error : null));
    },
  };
}

/** zlib's whole-file check of a stored upload (after igzip could not decide), counting its rows on the way. */
async function checkWithZlib(path: string, stats: DumpStats): Promise<Error | null> {
  const check = new GzipCheck({ onOutput: (chunk) => stats.write(chunk) });
  for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    await new Promise<void>((resolve) => check.feed(piece as Buffer, resolve) && resolve());
  }
  return check.finish();
}
