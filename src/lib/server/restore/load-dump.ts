import type { FileHandle } from 'node:fs/promises';
import { createRestoreFilter } from '../backup/restore-filter';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { clientToolsFor } from '../db/pg-binaries';
import type { RestoreRepository } from '../repositories/restore.repository';
import type { RestoreLog } from './restore-log';
import type { ValidatedDump } from './validate-backup';

/**
 * Step 5 (and the rollback's): the file, gunzipped and filtered, into psql in one
 * transaction that first resets the public schema. A failure anywhere changes nothing.
 * Into `database` when given (a staged restore), else into the instance database.
 * Progress is the share of the (compressed) file read.
 */
export async function loadDump(
  deps: { config: Config; db: Database; repository: RestoreRepository },
  dump: ValidatedDump,
  log: RestoreLog,
  options: {
    signal: AbortSignal;
    /** The dump, held open by the caller. */
    file?: FileHandle;
    /** A staged restore's new database; the instance database by default. */
    database?: string;
    /** Share of the file read (0..1); the current task's progress by default. */
    onProgress?: (fraction: number) => void;
  },
): Promise<void> {
  const { signal, file, database = deps.db.connection.database, onProgress = (fraction) => log.progress(fraction) } = options;
  const { db } = deps;
  const { psql } = await clientToolsFor(await db.serverVersion(), deps.config.pgBinDir);
  if (dump.kind === 'cluster') await log.info(`${dump.filename} is a cluster dump (pg_dumpall): only the "${db.connection.database}" database's part is restored`);
  await deps.repository.loadDump({
    psql,
    connection: { ...db.connection, database },
    path: dump.path,
    file,
    compressed: dump.compressed,
    filter: createRestoreFilter({
      connectingRole: db.connection.user,
      databaseName: db.connection.database,
      onNotice: (message) => void log.info(message),
    }),
    signal,
    timeoutMs: deps.config.childTimeoutMs,
    onBytesRead: (bytes) => onProgress(bytes / Math.max(1, dump.size)),
  });
  onProgress(1);
}
