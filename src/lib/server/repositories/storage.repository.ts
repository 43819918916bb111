import { constants, createReadStream, createWriteStream, type ReadStream, type WriteStream } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';

/** Filesystem calls and nothing else, so services can be read (and tested) as rules. */
export class StorageRepository {
  mkdir(path: string): Promise<string | undefined> {
    return mkdir(path, { recursive: true });
  }

  async exists(path: string): Promise<boolean> {
    try {
      await access(path);
      return true;
    } catch {
      return false;
    }
  }

  async canRead(path: string): Promise<boolean> {
    try {
      await access(path, constants.R_OK);
      await readFile(path);
      return true;
    } catch {
      return false;
    }
  }

  async writeMarker(path: string, content: string): Promise<boolean> {
    try {
      await writeFile(path, content);
      return true;
    } catch {
      return false;
    }
  }

  readdir(path: string): Promise<string[]> {
    return readdir(path);
  }

  stat(path: string) {
    return stat(path);
  }

  async unlink(path: string): Promise<void> {
    await unlink(path);
  }

  async removeIfExists(path: string): Promise<void> {
    await rm(path, { force: true });
  }

  rename(from: string, to: string): Promise<void> {
    return rename(from, to);
  }

  createReadStream(path: string, options?: { start?: number; end?: number }): ReadStream {
    return createReadStream(path, options);
  }

  createWriteStream(path: string, flags = 'wx'): WriteStream {
    return createWriteStream(path, { flags });
  }

  /** fsync a file, so a renamed backup is really on disk before we call it complete. */
  async fsync(path: string): Promise<void> {
    const handle = await open(path, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async fsyncDir(path: string): Promise<void> {
    const handle = await open(path, 'r');
    try {
      await handle.sync().catch(() => undefined);
    } finally {
      await handle.close();
    }
  }

  async readJson<T>(path: string): Promise<T | null> {
    try {
      return JSON.parse(await readFile(path, 'utf8')) as T;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  /** Write-then-rename, so a crash never leaves half a file behind. */
  async writeJsonAtomic(path: string, value: unknown, tmp = `${path}.${process.pid}.tmp`): Promise<void> {
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(JSON.stringify(value, null, 2));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  }

  createStream(path: string): WriteStream {
    return createWriteStream(path);
  }
}

export type { ReadStream, WriteStream };
