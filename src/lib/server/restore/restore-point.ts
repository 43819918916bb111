import { formatBytes } from '../../shared/format';
import type { RestoreLog } from './restore-log';

// A plain dump is usually a little smaller than the database on disk (indexes are not
// dumped): good enough for a progress bar that never goes backwards.
const DUMP_SHARE = 0.85;

/** What step 3 needs of the backup service (DatabaseBackupService). */
export interface RestorePointWriter {
  createBackup(options: { kind: 'restore-point'; compress: false; signal: AbortSignal; onBytes: (bytes: number) => void }): Promise<{ filename: string; filesize: number }>;
}

/** Step 3: a full backup of the current database, named restore-point-<routine name>. */
export async function createRestorePoint(
  backups: RestorePointWriter,
  databaseSize: () => Promise<number>,
  log: RestoreLog,
  signal: AbortSignal,
): Promise<string> {
  await log.task('backup', 'Creating a restore point (a backup of the current database)');
  const expected = Math.max(1, (await databaseSize().catch(() => 0)) * DUMP_SHARE);
  // Plain SQL: compression would be the slowest part of the downtime; it is compressed after the restore.
  const { filename, filesize } = await backups.createBackup({
    kind: 'restore-point',
    compress: false,
    signal,
    onBytes: (bytes) => log.progress(Math.min(0.99, bytes / expected)),
  });
  log.progress(1);
  await log.info(`Restore point ${filename} created (${formatBytes(filesize)})`);
  return filename;
}
