import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** The setup code's file: read, written readable by this process's user only, removed. Files and nothing else. */
export class SetupCodeRepository {
  /** The text and the permission bits, or null when there is no file. */
  async read(path: string): Promise<{ text: string; mode: number } | null> {
    try {
      const [text, stats] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
      return { text: text.trim(), mode: stats.mode & 0o777 };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  /** Created with mode 0600 (never readable by others, not even for a moment), then renamed into place. */
  async write(path: string, text: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    await rm(tmp, { force: true });
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(`${text}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    // The umask can only take bits away; this makes sure nothing else was there.
    await chmod(tmp, 0o600);
    await rename(tmp, path);
  }

  /** True when there was a file to remove. */
  async remove(path: string): Promise<boolean> {
    try {
      await rm(path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }
}
