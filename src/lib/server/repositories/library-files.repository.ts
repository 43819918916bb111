import { createWriteStream } from 'node:fs';
import { mkdir, opendir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

/**
 * The files of UPLOAD_LOCATION as paths, and lists of paths kept on disk (gzip text, one path a
 * line, written to .tmp and renamed). Read-only towards the library: nothing here deletes or
 * moves a file outside the folders it is given to write in.
 */
export class LibraryFilesRepository {
  /**
   * Every regular file under `root`, as paths relative to it ("/"-separated). `skip` is asked for
   * every entry (directories before they are entered); an unreadable folder is passed over.
   */
  async walk(root: string, skip: (relativePath: string, isDirectory: boolean) => boolean): Promise<Set<string>> {
    const files = new Set<string>();
    const pending = [''];
    while (pending.length) {
      const relativeDir = pending.pop()!;
      let dir;
      try {
        dir = await opendir(join(root, relativeDir), { bufferSize: 256 });
      } catch {
        continue;
      }
      for await (const entry of dir) {
        const path = relativeDir ? `${relativeDir}/${entry.name}` : entry.name;
        if (entry.isDirectory()) {
          if (!skip(path, true)) pending.push(path);
        } else if (entry.isFile() && !skip(path, false)) {
          files.add(path);
        }
      }
    }
    return files;
  }

  /** Writes lines (each ends with "\n" here), as gzip text when asked: to .tmp, then renamed. */
  async writeLines(path: string, lines: Iterable<string>, options: { gzip?: boolean } = {}): Promise<void> {
    const tmp = `${path}.${process.pid}.tmp`;
    const text = Readable.from(
      (function* () {
        let batch = '';
        for (const line of lines) {
          batch += `${line}\n`;
          if (batch.length >= 256 * 1024) {
            yield batch;
            batch = '';
          }
        }
        if (batch) yield batch;
      })(),
    );
    try {
      if (options.gzip) await pipeline(text, createGzip({ level: 1 }), createWriteStream(tmp));
      else await pipeline(text, createWriteStream(tmp));
      await rename(tmp, path);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
  }

  /** Writes bytes to .tmp, then renames. */
  async writeBytes(path: string, bytes: Uint8Array): Promise<void> {
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, path);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
  }

  /** The bytes of a file; null when it is not there or unreadable. */
  async readBytes(path: string): Promise<Buffer | null> {
    return readFile(path).catch(() => null);
  }

  async ensureDir(path: string): Promise<void> {
    await mkdir(path, { recursive: true });
  }

  /** Names in a folder with their modification times (for pruning a cache folder). */
  async listWithTimes(dir: string): Promise<Array<{ name: string; mtimeMs: number }>> {
    const names = await readdir(dir).catch(() => [] as string[]);
    const result: Array<{ name: string; mtimeMs: number }> = [];
    for (const name of names) {
      const info = await stat(join(dir, name)).catch(() => null);
      if (info?.isFile()) result.push({ name, mtimeMs: info.mtimeMs });
    }
    return result;
  }

  /** Only for files this app wrote itself (cache entries under .lifeboat/). */
  async removeOwnFile(path: string): Promise<void> {
    await rm(path, { force: true });
  }

  exists(path: string): Promise<boolean> {
    return stat(path).then(
      () => true,
      () => false,
    );
  }
}
