import type { DatabaseBackupService } from '../services/database-backup.service';
import type { RestoreLog } from './restore-log';

// A gzipped plain dump is usually a fifth to a tenth of the database's size on disk
// (indexes are not dumped): good enough for a progress bar that never goes backwards.
const COMPRESSED_SHARE = 1 / 6;

/** Step 3: a full backup of the current database, named restore-point-<routine name>. */
export async function createRestorePoint(
  backups: DatabaseBackupService,
  databaseSize: () => Promise<number>,
  log: RestoreLog,
  signal: AbortSignal,
): Promise<string> {
  await log.task('backup', 'Creating a restore point (a backup of the current database)');
  const expected = Math.max(1, (await databaseSize().catch(() => 0)) * COMPRESSED_SHARE);
  const { filename, filesize } = await backups.createBackup({
    kind: 'restore-point',
    signal,
    onBytes: (bytes) => log.progress(Math.min(0.99, bytes / expected)),
  });
  log.progress(1);
  await log.info(`Restore point ${filename} created (${formatBytes(filesize)})`);
  return filename;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
