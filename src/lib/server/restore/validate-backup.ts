import { basename } from 'node:path';
import { InvalidDumpError, inspectDumpFile, type DumpKind } from '../backup/dump-sniff';
import { badRequest } from '../errors';
import type { RestoreRepository } from '../repositories/restore.repository';

export interface ValidatedDump {
  path: string;
  filename: string;
  size: number;
  compressed: boolean;
  kind: DumpKind;
}

/**
 * Step 1, before anything changes: readable gzip (or plain SQL) that starts like a pg_dump or
 * pg_dumpall dump (400 with the reason). A backup's name is checked first by
 * DatabaseBackupService.backupPath (bad name 400, missing 404); the command line may restore a
 * file from anywhere.
 */
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
