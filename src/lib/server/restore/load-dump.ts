import type { FileHandle } from 'node:fs/promises';
import { createRestoreFilter, type FilterSummary } from '../dump-filter';
import type { Config } from '../config';
import type { ConnectionOptions } from '../db/connection';
import type { Database } from '../db/database';
import { restorePsqlFor } from '../db/pg-binaries';
import type { DumpExtension, LoadDumpOptions, RestoreRepository } from '../repositories/restore.repository';
import { ALLOWED_EXTENSIONS } from './extensions';
import type { RestoreLog } from './restore-log';
import type { ValidatedDump } from './validate-backup';

export interface LoadDeps {
  config: Config;
  db: Database;
  repository: RestoreRepository;
}

export interface LoadTarget {
  /** psql's login: an unprivileged role (see DumpLogin); its database is `database`. */
  login: ConnectionOptions;
  /** A staged restore's new database, or the instance database. */
  database: string;
  /** SQL run first in the transaction (RestoreRepository's prelude()). */
  prelude: string;
  /** Extensions the app created before the load: the dump's own statements about them are left out. */
  extensions: DumpExtension[];
}

/**
 * Step 5 (and the rollback's): the file, gunzipped and filtered, into psql in restricted mode, in
 * one transaction. A failure anywhere changes nothing. Progress is the share of the (compressed)
 * file read.
 */
export async function loadDump(
  deps: LoadDeps,
  dump: ValidatedDump,
  log: RestoreLog,
  target: LoadTarget,
  options: {
    signal: AbortSignal;
    /** The dump, held open by the caller. */
    file?: FileHandle;
    /** Share of the file read (0..1); the current task's progress by default. */
    onProgress?: (fraction: number) => void;
    /** The file its manifest describes: checked before COMMIT (see RestoreRepository.loadDump). */
    expectFile?: LoadDumpOptions['expectFile'];
  },
): Promise<void> {
  const { signal, file, expectFile, onProgress = (fraction) => log.progress(fraction) } = options;
  const { db, repository } = deps;
  const psql = await restorePsqlFor(await db.serverVersion(), deps.config.pgBinDir);
  if (dump.kind === 'cluster') await log.info(`${dump.filename} is a cluster dump (pg_dumpall): only the "${db.connection.database}" database's part is restored`);
  let summary: FilterSummary | null = null;
  await repository.loadDump({
    psql,
    connection: { ...target.login, database: target.database },
    path: dump.path,
    file,
    compressed: dump.compressed,
    prelude: target.prelude,
    // One transaction that makes the tables it fills: their rows can be loaded frozen.
    filter: await restoreFilterFor(deps, target, log, (result) => (summary = result), { freezeCopies: true }),
    signal,
    timeoutMs: deps.config.childTimeoutMs,
    onBytesRead: (bytes) => onProgress(bytes / Math.max(1, dump.size)),
    expectFile,
    igzip: deps.config.igzip,
  });
  onProgress(1);
  if (summary) await log.info(describeSummary(summary));
}

/** The restore filter for this server and target; its summary is logged at the end unless `onSummary` takes it. */
export async function restoreFilterFor(deps: LoadDeps, target: LoadTarget, log: RestoreLog, onSummary?: (summary: FilterSummary) => void, options: { freezeCopies?: boolean } = {}) {
  const { db, repository } = deps;
  return createRestoreFilter({
    databaseName: db.connection.database,
    existingRoles: await repository.roleNames(db.admin ?? db.connection),
    allowedExtensions: ALLOWED_EXTENSIONS,
    preparedSchemas: new Set(target.extensions.map((extension) => extension.schema).filter((schema): schema is string => !!schema && schema !== 'public')),
    onNotice: (message) => void log.info(message),
    onSummary: onSummary ?? ((summary) => void log.info(describeSummary(summary))),
    freezeCopies: options.freezeCopies,
  });
}

/** One log line: what the app did instead of the dump, and the GRANTs to roles this server lacks. */
function describeSummary(summary: FilterSummary): string {
  const parts = Object.entries(summary.skipped)
    .filter(([, count]) => count > 0)
    .map(([category, count]) => `${count} ${category}`);
  let line = parts.length ? `Left out of the dump (the app handles these itself): ${parts.join(', ')} statement(s)` : 'Nothing left out of the dump';
  if (summary.missingRoles.length) line += `; GRANTs to roles this server does not have were skipped: ${summary.missingRoles.map((role) => `"${role}"`).join(', ')}`;
  return line;
}
