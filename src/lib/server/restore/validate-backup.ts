import { basename } from 'node:path';
import { InvalidDumpError, inspectDumpFile, type DumpKind } from '../backup/dump-sniff';
import type { DatabaseBackupService } from '../services/database-backup.service';
import { badRequest } from '../services/errors';
import type { RestoreRepository } from '../repositories/restore.repository';

export interface ValidatedDump {
  path: string;
  filename: string;
  size: number;
  compressed: boolean;
  kind: DumpKind;
}

/**
 * Step 1, before anything changes: a plain name of a file in the backups folder (bad name
 * 400, missing 404), readable gzip that starts like a pg_dump or pg_dumpall dump (400 with
 * the reason).
 */
export async function validateBackup(backups: DatabaseBackupService, repository: RestoreRepository, name: unknown): Promise<ValidatedDump> {
  const path = await backups.backupPath(name);
  return validateDumpFile(repository, path);
}

/** The same checks on a file given by path (the command line may restore a file from anywhere). */
export async function validateDumpFile(repository: RestoreRepository, path: string): Promise<ValidatedDump> {
  const filename = basename(path);
  try {
    const { compressed, kind } = await inspectDumpFile(path);
    return { path, filename, size: await repository.fileSize(path), compressed, kind };
  } catch (error) {
    if (error instanceof InvalidDumpError) throw badRequest(`${filename} cannot be restored: ${error.message}`);
    throw error;
  }
}
