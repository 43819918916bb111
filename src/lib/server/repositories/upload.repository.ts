import { link, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Filesystem calls for uploaded backups, and nothing else. */
export class UploadRepository {
  /**
   * Moves `from` to `to` unless `to` exists, atomically where the filesystem allows it:
   * link() fails with EEXIST instead of replacing, which rename() would do silently.
   * Returns false when `to` already exists.
   */
  async moveNoReplace(from: string, to: string): Promise<boolean> {
    try {
      await link(from, to);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      // Filesystems without hard links (some network and FUSE mounts): check, then rename.
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
      if (await stat(to).then(() => true, () => false)) return false;
      await rename(from, to);
      return true;
    }
    await unlink(from);
    return true;
  }

  /** The first `bytes` bytes of a file (fewer when it is shorter). */
  async readHead(path: string, bytes: number): Promise<Buffer> {
    const file = await open(path, 'r');
    try {
      const buffer = Buffer.alloc(bytes);
      const { bytesRead } = await file.read(buffer, 0, bytes, 0);
      return buffer.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  }

  async remove(path: string): Promise<void> {
    await rm(path, { force: true });
  }

  /** Removes files in `dir` whose names match, e.g. temporary uploads left by a crash. */
  async removeMatching(dir: string, pattern: RegExp): Promise<string[]> {
    const names = (await readdir(dir).catch(() => [] as string[])).filter((name) => pattern.test(name));
    for (const name of names) await rm(join(dir, name), { force: true });
    return names;
  }
}
