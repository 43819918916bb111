import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes, formatDuration } from '../../shared/format';
import { FileDigest } from '../backup/manifest';
import type { MaintenanceStatus } from '../../shared/types';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { checkHealth } from '../restore/health-check';
import { disconnect } from '../restore/disconnect';
import { loadDump } from '../restore/load-dump';
import { loadDumpParallel } from '../restore/parallel-load';
import { clearSpoolFolder } from '../restore/spool';
import { migrateRestored } from '../restore/migrate';
import { createRestorePoint } from '../restore/restore-point';
import { RestoreLog } from '../restore/restore-log';
import { stagingDecision, type StagedDatabase } from '../restore/staged-database';
import { ReplacedDatabaseRecord, type ReplacedRecord } from '../restore/replaced-database';
import type { StorageRepository } from '../repositories/storage.repository';
import { DumpLogin } from '../restore/dump-login';
import { checkExtensions, checkInstalledExtensions } from '../restore/extensions';
import { prepareLoad, type PreparedLoad } from '../restore/prepare-load';
import { prelude, RestoreRepository, type DumpExtension } from '../repositories/restore.repository';
import { validateDumpFile, type ValidatedDump } from '../restore/validate-backup';
import type { DatabaseBackupService } from './database-backup.service';
import { ServiceError } from '../errors';
import type { MaintenanceService } from './maintenance.service';
import type { OperationLock } from './operation-lock';

/** What a restore needs from the app (the Lifeboat composition root provides it). */
export interface RestoreHost {
  config: Config;
  storageRepository: StorageRepository;
  db: Database;
  maintenance: MaintenanceService;
  lock: OperationLock;
  backups: DatabaseBackupService;
  auth: { hasAdmin(): Promise<boolean> };
  migrate(): Promise<string[]>;
  forgetOnboarding(): void;
  log(line: string): void;
  /** A restore-point file once it is complete: read back and verified like every backup. */
  verification?: { verify(filename: string): Promise<unknown> };
}

interface RestoreResult {
  /** In place: the restore-point file made first (plain, compressed afterwards). Staged: null, the replaced database is the restore point. */
  restorePoint: string | null;
  /** Set when the restore was staged: the replaced database is still there. */
  staged: StagedDatabase | null;
}

interface Run {
  controller: AbortController;
  done: Promise<MaintenanceStatus>;
}

const SHUTDOWN = 'the server is shutting down';

/**
 * Restores a database backup. run() reads as the list of steps: validate → lock →
 * restore point → disconnect → restore → migrations → health check → done; any failure
 * after the restore began rolls back to the restore point and reports both results.
 * The web route starts it in the background (startRestore); the command line awaits it (restore).
 */
export class RestoreService {
  private current: Run | null = null;
  private background: Promise<void> | null = null;
  private stopBackground: (() => void) | null = null;

  private readonly replaced: ReplacedDatabaseRecord;
  /** Where a parallel load reads ahead (emptied before and after each load, and at start). */
  private readonly spoolFolder: string;

  constructor(
    private readonly host: RestoreHost,
    private readonly repository = new RestoreRepository(),
  ) {
    this.replaced = new ReplacedDatabaseRecord(host.storageRepository, join(host.config.uploadLocation, '.lifeboat'));
    this.spoolFolder = join(host.config.uploadLocation, '.lifeboat', 'restore-spool');
  }

  /**
   * At start: a database a staged restore replaced and that was not saved to a file yet (the
   * process stopped first) is saved now, in the background.
   */
  resume(): Promise<void> {
    this.background = (async () => {
      // Only when no process (this one, or a web server beside the command line) holds the operation lock: a running load uses the folder.
      await this.host.lock.run('backup', () => clearSpoolFolder(this.spoolFolder)).catch(() => undefined);
      const record = await this.replaced.read();
      if (!record) return;
      const line = `The data from before the restore of ${record.restored} is kept in the database "${record.database}" and is not saved to a file yet: saving it now as a restore point`;
      this.host.log(line);
      await this.host.maintenance.log(line).catch(() => undefined);
      await this.saveReplaced(record);
    })().catch((error) => this.host.log(`Could not save the replaced database: ${messageOf(error)}`));
    return this.background;
  }

  /** Step 1, synchronously for the route: 400 bad name or not a dump, 404 missing. */
  async validate(name: unknown): Promise<ValidatedDump> {
    return validateDumpFile(this.repository, await this.host.backups.backupPath(name));
  }

  validatePath(path: string): Promise<ValidatedDump> {
    return validateDumpFile(this.repository, path);
  }

  /**
   * The web API: checks everything that can be checked before anything changes (400/404/409),
   * enters maintenance mode (or stays in it), and starts the restore in the background.
   * Returns a new maintenance token for this browser unless it already holds a valid one.
   */
  async startRestore(name: unknown, options: { by: string; token?: string }): Promise<{ token: string | null; status: MaintenanceStatus }> {
    const dump = await this.validate(name);
    const extensions = await this.precheck(dump);
    // A failed restore reports its end a moment before it lets go of the lock (it closes its
    // file): a "restore the restore point" clicked at once waits for that rather than get 409.
    if (this.current && !this.host.maintenance.isRunning()) await this.current.done;
    // A restore drill running now is cancelled (its scratch database dropped): the restore goes first.
    await this.host.lock.preempt();
    const release = this.host.lock.acquire('restore');
    let entered: { token: string | null; wasActive: boolean };
    try {
      entered = await this.enterMaintenance(dump, options.by, options.token);
    } catch (error) {
      release();
      throw error;
    }
    this.launch(dump, extensions, entered.wasActive, release);
    return { token: entered.token, status: this.host.maintenance.status };
  }

  /** The command line: the same restore, awaited; resolves with the final status. */
  async restore(dump: ValidatedDump, options: { by: string }): Promise<MaintenanceStatus> {
    const extensions = await this.precheck(dump);
    // A restore drill running now is cancelled (its scratch database dropped): the restore goes first.
    await this.host.lock.preempt();
    const release = this.host.lock.acquire('restore');
    let wasActive: boolean;
    try {
      ({ wasActive } = await this.enterMaintenance(dump, options.by));
    } catch (error) {
      release();
      throw error;
    }
    return this.launch(dump, extensions, wasActive, release).done;
  }

  /** On shutdown: kill psql (its transaction rolls back) and record the interruption. */
  async abort(): Promise<void> {
    const run = this.current;
    if (run) {
      run.controller.abort(new Error(SHUTDOWN));
      await run.done.catch(() => undefined);
    }
    // After the run: one that succeeded meanwhile starts no background work (see launch), but one already running is stopped.
    this.stopBackground?.();
    await this.background;
  }

  get running(): boolean {
    return this.current !== null;
  }

  /**
   * Leaves maintenance mode (the route's "end" and the command line's "maintenance end"):
   * never while a restore or backup runs, and only once the database takes this version's
   * migrations, so the app never serves a database it cannot use.
   */
  async endMaintenance(by: string): Promise<MaintenanceStatus> {
    const { maintenance } = this.host;
    if (!maintenance.isActive()) return maintenance.status;
    await this.host.lock.run('restore', async () => {
      try {
        await this.host.migrate();
      } catch (error) {
        throw new ServiceError(409, `Maintenance mode stays on: the database cannot be used by this version (${(error as Error).message}). Restore a backup first.`);
      }
      this.host.forgetOnboarding();
      await maintenance.end({}, `Maintenance mode ended by ${by}`);
    });
    return maintenance.status;
  }

  private async enterMaintenance(dump: ValidatedDump, by: string, token?: string): Promise<{ token: string | null; wasActive: boolean }> {
    const { maintenance } = this.host;
    const wasActive = maintenance.isActive();
    // The first step shows from the first moment: a restore-point file (in place) or the restore itself (staged).
    const admin = this.host.db.admin ?? this.host.db.connection;
    const task = (await stagingDecision(this.repository, admin, dump)).reason ? 'backup' : 'restore';
    const newToken = wasActive && maintenance.validateToken(token) ? null : await maintenance.start('restore_database', by);
    await maintenance.begin('restore_database', { backup: dump.filename, task }, `Restore of ${dump.filename} started by ${by}`);
    return { token: newToken, wasActive };
  }

  /**
   * What can refuse a restore before anything changes: no unprivileged role to run the dump as
   * (unless RESTORE_ALLOW_PRIVILEGED), an extension the dump needs that is not allowed or not
   * installed. Returns those extensions.
   */
  private async precheck(dump: ValidatedDump): Promise<DumpExtension[]> {
    DumpLogin.precheck(this.host.config, this.host.db);
    const verification = (await this.host.backups.manifests.read(dump.filename))?.verification;
    if (verification?.status === 'corrupted') {
      throw new ServiceError(
        409,
        `${dump.filename} cannot be restored: verification found it corrupted on ${verification.checkedAt} (${verification.error?.replace(/^The backup is corrupted: /, '') ?? 'no reason recorded'}). ` +
          'Choose another backup, or fetch an intact copy (off-site) and verify it. Nothing was changed.',
      );
    }
    const pending = await this.replaced.read();
    if (pending) {
      const why = pending.error ? ` The last try failed: ${pending.error}. Fix that and restart Lifeboat (it tries again at start), or drop that database by hand if you do not need it.` : ' Try again in a moment.';
      throw new ServiceError(409, `The database the last restore replaced ("${pending.database}", the data from before the restore of ${pending.restored}) is still being saved as a restore-point file: a new restore would drop it.${why}`);
    }
    await this.checkSpace(dump);
    return checkExtensions(this.repository, this.host.db.admin ?? this.host.db.connection, dump);
  }

  /**
   * A staged restore holds the new database beside the live one until the old one is saved and
   * dropped: refused up front when the server's disk cannot hold it. Only a server on this
   * machine (the embedded cluster, or one reached by socket or localhost) has a disk we can see.
   */
  private async checkSpace(dump: ValidatedDump): Promise<void> {
    const { db } = this.host;
    const folder = await this.dataFolder().catch(() => null);
    if (!folder || !db.admin) return;
    const free = await this.repository.freeBytes(folder).catch(() => null);
    if (free === null) return;
    const needed = estimateDatabaseBytes(dump);
    if (free >= needed) return;
    throw new ServiceError(
      507,
      `Not enough disk space for this restore: the backup is loaded into a new database beside the current one, which needs about ${formatBytes(needed)} in ${folder}, and ${formatBytes(free)} is free. ` +
        `Free at least ${formatBytes(needed - free)} (old backups, other files on that disk), then try again. Nothing was changed.`,
    );
  }

  private async dataFolder(): Promise<string | null> {
    const { config, db } = this.host;
    if (config.database.kind === 'embedded') return config.database.dataLocation;
    const host = db.connection.host ?? '';
    if (!(host.startsWith('/') || host === 'localhost' || host === '127.0.0.1' || host === '::1') || !db.admin) return null;
    return this.repository.dataDirectory(db.admin);
  }

  private launch(dump: ValidatedDump, extensions: DumpExtension[], wasActive: boolean, release: () => void): Run {
    const controller = new AbortController();
    const done = this.runWithFile(dump, extensions, wasActive, controller.signal)
      .catch(async (error) => {
        // run() reports its own failures; this is the last resort for a failure while reporting.
        this.host.log(`Restore failed unexpectedly: ${(error as Error).stack ?? error}`);
        await this.host.maintenance.setStatus({ task: 'error', error: `Restore failed: ${(error as Error).message}` }).catch(() => undefined);
        return null;
      })
      .finally(() => {
        release();
        this.current = null;
      })
      .then((result) => {
        if (result && !controller.signal.aborted) this.background = this.afterRestore(result);
        return this.host.maintenance.status;
      });
    this.current = { controller, done };
    return this.current;
  }

  /** Resolves once work that follows a restore (dropping the replaced database, compressing the restore point) is over. */
  async idle(): Promise<void> {
    // A restore that just reported its end may not have handed over to its background work yet.
    await this.current?.done.catch(() => undefined);
    await this.background;
  }

  /**
   * Work that need not keep the app down, once a restore succeeded. Staged: the replaced database
   * (the restore point) is saved as a restore-point file, then dropped. In place: the restore
   * point, written plain so that making it cost the least downtime, is compressed. Under the lock,
   * so no restore starts meanwhile. On shutdown it is abandoned safely (a replaced database is
   * saved at the next start).
   */
  private async afterRestore({ restorePoint: name, staged }: RestoreResult): Promise<void> {
    if (staged) {
      const record = await this.replaced.read();
      if (record) await this.saveReplaced(record);
      return;
    }
    if (!name) return;
    const controller = new AbortController();
    this.stopBackground = () => controller.abort();
    try {
      await this.host.lock.run('backup', async () => {
        const compressed = await this.host.backups.compressBackup(name, controller.signal);
        if (this.host.maintenance.status.restorePoint === name) await this.host.maintenance.setStatus({ restorePoint: compressed });
        this.host.log(`Restore point compressed: ${compressed}`);
        void this.host.verification?.verify(compressed).catch(() => undefined);
      });
    } catch (error) {
      this.host.log(`After the restore: ${(error as Error).message}. The restore point ${name} stays uncompressed`);
    } finally {
      this.stopBackground = null;
    }
  }

  /** Dumps the replaced database into a restore-point file, then drops it (or keeps it until the next restore: RESTORE_KEEP_REPLACED_DATABASE). */
  private async saveReplaced(record: ReplacedRecord): Promise<void> {
    const controller = new AbortController();
    this.stopBackground = () => controller.abort();
    const note = (line: string) => {
      this.host.log(line);
      return this.host.maintenance.log(line).catch(() => undefined);
    };
    try {
      await this.host.lock.run('backup', async () => {
        const admin = this.host.db.admin ?? this.host.db.connection;
        if (!(await this.repository.databaseExists(admin, record.database))) {
          await this.replaced.clear();
          return;
        }
        const { filename } = await retryBusy(() => this.host.backups.createBackup({ kind: 'restore-point', database: record.database, signal: controller.signal }), controller.signal);
        await this.replaced.clear();
        void this.host.verification?.verify(filename).catch(() => undefined);
        if (this.host.maintenance.status.backup === record.restored && !this.host.maintenance.status.restorePoint) await this.host.maintenance.setStatus({ restorePoint: filename }).catch(() => undefined);
        if (this.host.config.keepReplacedDatabase) return note(`Restore point ${filename} saved from the replaced database "${record.database}", which is kept until the next restore (RESTORE_KEEP_REPLACED_DATABASE)`);
        await this.repository.dropDatabase(admin, record.database);
        await note(`Restore point ${filename} saved from the replaced database "${record.database}", which was then dropped`);
      });
    } catch (error) {
      if (controller.signal.aborted) return;
      const message = messageOf(error);
      await this.replaced.write({ ...record, error: message }).catch(() => undefined);
      await note(`Could not save the replaced database "${record.database}" as a restore point (${message}); it is kept, and Lifeboat tries again at its next start`);
    } finally {
      this.stopBackground = null;
    }
  }

  /**
   * The dump is held open from the start: the restore point, or an upload, may be renamed
   * over its name meanwhile (backup names have one-second resolution).
   */
  private async runWithFile(dump: ValidatedDump, extensions: DumpExtension[], wasActive: boolean, signal: AbortSignal): Promise<RestoreResult | null> {
    const file = await this.repository.openDump(dump.path);
    try {
      return await this.run(dump, extensions, wasActive, signal, file);
    } finally {
      await file.close();
    }
  }

  /**
   * The restore itself, one step after another (validation and the lock came before). Staged (the
   * default), the live database is left alone until the swap and then kept, renamed, as the
   * restore point (saved to a file once the app is back). In place, a restore-point file is made
   * first, and the load is one transaction.
   */
  private async run(dump: ValidatedDump, extensions: DumpExtension[], wasActive: boolean, signal: AbortSignal, file: FileHandle): Promise<RestoreResult | null> {
    const { host, repository } = this;
    const log = new RestoreLog(host.maintenance, (line) => host.log(line));
    const steps = { config: host.config, db: host.db, repository };
    const admin = host.db.admin ?? host.db.connection;

    let restorePoint: string | null = null;
    const makeRestorePoint = async () => {
      restorePoint = await createRestorePoint(host.backups, () => repository.databaseSize(host.db), log, signal);
      await host.maintenance.setStatus({ restorePoint });
    };
    const decision = await stagingDecision(repository, admin, dump);
    try {
      if (decision.reason) await makeRestorePoint();
      else await log.task('restore', `Restoring ${dump.filename} into a new database beside the current one`);
    } catch (error) {
      await this.stopUnchanged(log, error, wasActive, signal);
      return null;
    }

    const before = await repository.fingerprint(host.db).catch(() => null);
    let staged: StagedDatabase | null = null;
    let committed = false;
    let login: DumpLogin | null = null;
    let prepared: PreparedLoad | null = null;
    let loadStarted = false;
    try {
      await disconnect(host.db, repository, log);
      prepared = await prepareLoad(steps, dump, extensions, log, decision);
      ({ staged, login } = prepared);
      // A new database could not be made after all: in place, after a restore-point file.
      if (!staged && !restorePoint) await makeRestorePoint();
      if (!staged) await log.task('restore', `Restoring ${dump.filename}`);
      loadStarted = true;
      await this.load(dump, prepared, log, signal, file);
      await checkInstalledExtensions(repository, admin, prepared.target.database);
      if (staged) {
        await log.task('swap', 'Giving the restored database its name');
        await login.handOver(staged.staged, prepared.facts!.owner, prepared.properties!);
        // Recorded before the swap: a process killed right after it still finds and saves the old data.
        await this.replaced.write({ database: staged.replaced, restored: dump.filename, replacedAt: new Date().toISOString() });
        await staged.swapIn().catch(async (error) => {
          if (!staged!.isSwappedIn) await this.replaced.clear();
          throw error;
        });
      } else if (prepared.properties) {
        // In place the dump ran as the database's owner: what it changed about the database itself is undone.
        await repository.setDatabaseProperties(host.db.admin!, host.db.connection.database, prepared.properties);
      }
      committed = true;
      await log.info(staged ? `${dump.filename} restored; the new database took the name "${host.db.connection.database}", the previous one is kept as "${staged.replaced}" (the restore point)` : `${dump.filename} restored`);
      await this.resetOwnerRole();
      await migrateRestored(() => host.migrate(), log);
      await checkHealth(host.db, () => host.auth.hasAdmin(), log);
    } catch (error) {
      if (prepared && loadStarted) await this.afterFailedLoad(prepared, log);
      await this.resetOwnerRole();
      await this.recover(log, error, { dump, restorePoint, committed, before, staged, signal, loadStarted: loadStarted && !staged });
      // After recover: the role owns a staged database until that is dropped.
      await login?.release(log);
      return null;
    }
    await login.release(log);
    host.forgetOnboarding();
    await host.maintenance.end({ task: 'done', progress: 1, error: null, stage: null, etaSeconds: null }, `Restore of ${dump.filename} complete: maintenance mode ended. Sign in with the restored instance's accounts.`);
    host.log(`Restore of ${dump.filename} complete`);
    return { restorePoint, staged };
  }

  /**
   * A staged restore loads on several connections (its database is invisible until the swap);
   * in place it is one transaction, as the rollback needs.
   */
  private async load(dump: ValidatedDump, prepared: PreparedLoad, log: RestoreLog, signal: AbortSignal, file: FileHandle): Promise<void> {
    const { config } = this.host;
    const steps = { config, db: this.host.db, repository: this.repository };
    // The new database has the live one's connection limit: never more connections than it allows.
    const limit = prepared.properties?.connectionLimit ?? -1;
    const jobs = limit > 0 ? Math.min(config.restoreJobs, limit) : config.restoreJobs;
    // The bytes loaded are hashed on the way: a file changed since its manifest was written is neither committed nor swapped in.
    const manifest = await this.host.backups.manifests.read(dump.filename);
    const notThisFile = `${dump.filename} is not the file its manifest describes (its SHA-256 or size differ from when it was written): it was changed or damaged since. Verify it to see more`;
    // A file zlib verified whole may be inflated by igzip: what is read is proven to be those bytes before it counts.
    const verified = manifest?.verification.status === 'verified' && manifest.verification.sha256 === manifest.sha256;
    if (!prepared.staged || jobs < 2) {
      const expectFile = manifest ? { sha256: manifest.sha256, size: manifest.size, verified, error: notThisFile } : undefined;
      return loadDump(steps, dump, log, prepared.target, { signal, file, expectFile });
    }
    const started = Date.now();
    const loaded = new FileDigest();
    const result = await loadDumpParallel(steps, dump, log, prepared.target, {
      signal,
      file,
      jobs,
      spoolFolder: this.spoolFolder,
      onProgress: ({ fraction, detail }) => log.progress(fraction, detail),
      onFileChunk: manifest ? (chunk) => loaded.update(chunk) : undefined,
      igzip: verified ? config.igzip : null,
    });
    if (manifest && (loaded.size !== manifest.size || loaded.digest() !== manifest.sha256)) {
      throw new Error(notThisFile);
    }
    const spool = result.spoolPeakBytes ? `, up to ${formatBytes(result.spoolPeakBytes)} read ahead to disk` : '';
    await log.info(`Loaded ${result.tables} table(s), then ${result.postDataUnits} index, constraint and other step(s), on ${jobs} connections in ${formatDuration(Date.now() - started)}${spool}`);
  }

  /**
   * The owner role back to an unprivileged login with its own password and no settings: a dump
   * run in place as that role could have changed them. Needs the administrator; best effort.
   */
  private async resetOwnerRole(): Promise<void> {
    const { db } = this.host;
    if (!db.admin || db.access.appPrivileges.length) return;
    await this.repository.resetOwnerRole(db.admin, db.connection.user, db.connection.password).catch((error) => this.host.log(`Could not reset the role "${db.connection.user}": ${messageOf(error)}`));
  }

  /**
   * After psql failed or was killed: its server session may live on (in a long statement, holding
   * the locks of the whole load) until it is ended; in place, what the dump changed about the
   * database itself (settings, privileges, connection limit) is put back, so the rollback and the
   * app can connect and write. Best effort: the rollback reports what still fails.
   */
  private async afterFailedLoad(prepared: PreparedLoad, log: RestoreLog): Promise<void> {
    const { db } = this.host;
    const { target, staged, properties } = prepared;
    await this.repository
      .terminateSessionsOf(db.admin ?? db.connection, target.database, target.login.user)
      .catch((error) => log.info(`Could not end the restore's own session (${messageOf(error)})`));
    if (!staged && properties && db.admin) {
      await this.repository.setDatabaseProperties(db.admin, target.database, properties).catch((error) => log.info(`Could not put the database's properties back (${messageOf(error)})`));
    }
  }

  /** The restore point failed: nothing was changed. Maintenance mode goes back to how it was. */
  private async stopUnchanged(log: RestoreLog, error: unknown, wasActive: boolean, signal: AbortSignal): Promise<void> {
    const why = signal.aborted ? `interrupted because ${SHUTDOWN}` : `the restore point could not be created: ${messageOf(error)}`;
    const message = `Restore not started: ${why}. Nothing was changed.`;
    await log.info(message);
    const patch = { task: 'error' as const, error: message, finishedAt: new Date().toISOString() };
    if (wasActive || signal.aborted) await this.host.maintenance.setStatus(patch);
    else await this.host.maintenance.end(patch, 'Maintenance mode ended: the database was not touched');
  }

  /**
   * A failure after the restore began. When the restore's own transaction failed the
   * database is unchanged: that is checked (the same public schema and tables, by OID, as before),
   * and the restore point is only restored when the check fails. After the dump committed
   * (migrations or health check failed), the restore point is restored. Either way the
   * server stays in maintenance mode with the error, so the admin sees what happened.
   */
  private async recover(
    log: RestoreLog,
    error: unknown,
    context: { dump: ValidatedDump; restorePoint: string | null; committed: boolean; before: string | null; staged: StagedDatabase | null; signal: AbortSignal; loadStarted?: boolean },
  ): Promise<void> {
    const { host } = this;
    const { restorePoint, signal, staged } = context;
    const failedTask = host.maintenance.status.task;
    const original = `Restore failed: ${messageOf(error)}`;
    const notNeeded = restorePoint ? ` (the restore point ${restorePoint} was not needed)` : '';
    // Staged, once swapped in: the previous database is the restore point, kept under another name.
    const keptAs = staged?.isSwappedIn ? `the previous database is kept as "${staged.replaced}"` : null;
    const fail = async (message: string) => {
      await log.info(message);
      await host.maintenance.setStatus({ task: 'error', error: message, finishedAt: new Date().toISOString() });
    };

    // Staged: the live database is only touched by the swap. In place: only when the dump never
    // reached psql. Once it did, a dump could have ended the transaction itself (a COMMIT the
    // filter did not see as one) and changed rows while the schema's OIDs stayed the same, so the
    // restore point is restored.
    const unchanged = async () =>
      !context.committed &&
      (staged !== null || (!context.loadStarted && context.before !== null && (await this.repository.fingerprint(host.db).catch(() => null)) === context.before));

    if (signal.aborted) {
      // No rollback while the server stops: the admin decides after the restart.
      const state = (await unchanged())
        ? staged
          ? `the backup was being loaded into a separate database, so the database is as it was`
          : `the restore's transaction was rolled back, so the database is as it was${restorePoint ? ` (restore point: ${restorePoint})` : ''}`
        : keptAs
          ? `the database holds the backup, not yet checked (interrupted during "${failedTask}"); ${keptAs} and is saved as a restore-point file at the next start`
          : `the database may hold the backup, not yet checked (interrupted during "${failedTask}"): check it, or restore the restore point ${restorePoint}`;
      return fail(`Restore interrupted because ${SHUTDOWN}: ${state}.`);
    }
    await log.info(original);

    if (await unchanged()) {
      if (staged) {
        const dropped = await staged.discard().then(
          () => 'which was dropped',
          async (dropError) => {
            await log.info(`Could not drop the database "${staged.staged}" (${messageOf(dropError)}); the next restore drops it`);
            return 'which could not be dropped yet (the next restore drops it)';
          },
        );
        return fail(`${original}. The database was not changed: the backup was being restored into a separate database, ${dropped}${notNeeded}.`);
      }
      return fail(`${original}. The database was not changed: the restore runs in one transaction, which was rolled back${notNeeded}.`);
    }

    if (staged?.isSwappedIn) {
      try {
        await log.task('rollback', `Rolling back: the previous database gets its name back (it is kept aside until the restore succeeds)`);
        await host.db.closePool();
        await staged.swapBack();
        await this.replaced.clear();
        host.forgetOnboarding();
        return fail(`${original}. Rolled back to the database as it was before the restore: OK (a swap of names back)`);
      } catch (swapError) {
        if (!restorePoint) {
          return fail(
            `${original}. Rolling back FAILED too: the previous database could not get its name back (${messageOf(swapError)}). ` +
              `Nothing is lost: ${keptAs}, and Lifeboat saves it as a restore-point file at its next start; restart Lifeboat, then restore that file (Administration > Maintenance).`,
          );
        }
        await log.info(`Could not give the previous database its name back (${messageOf(swapError)}): restoring the restore point instead`);
      }
    }
    if (!restorePoint) return fail(`${original}. There is no restore-point file to roll back to${keptAs ? `; ${keptAs}` : ''}.`);

    try {
      await log.task('rollback', `Rolling back to the restore point ${restorePoint}`);
      const point = await this.validate(restorePoint);
      const steps = { config: host.config, db: host.db, repository: this.repository };
      const extensions = await checkExtensions(this.repository, host.db.admin ?? host.db.connection, point);
      await disconnect(host.db, this.repository, log);
      const login = await DumpLogin.forRestore(steps, false, log);
      const target = { login: login.connection, database: host.db.connection.database, prelude: prelude(login.superuser ? 'in-place-superuser' : 'in-place', extensions), extensions };
      await loadDump(steps, point, log, target, { signal });
      await this.resetOwnerRole();
      const ran = await host.migrate();
      if (ran.length) await log.info(`Applied ${ran.length} migration(s) to the restore point`);
      host.forgetOnboarding();
    } catch (rollbackError) {
      return fail(
        `${original}. Rollback to ${restorePoint} FAILED too: ${messageOf(rollbackError)}. ` +
          `The database may be inconsistent; Lifeboat stays in maintenance mode: restore ${restorePoint} by hand (Administration > Maintenance, or npm run cli -- restore ${restorePoint}).`,
      );
    }
    return fail(`${original}. Rolled back to ${restorePoint}: OK`);
  }
}

/** How much room a staged restore's new database needs: a compressed dump is about an eighth of it, a plain one a little less. */
export function estimateDatabaseBytes(dump: { size: number; compressed: boolean }): number {
  return Math.ceil(dump.size * (dump.compressed ? 8 : 1.3));
}

/**
 * Right after a restore the app's own work (the files report, the schedule, sign-ins) may hold every
 * connection a database with a small CONNECTION LIMIT allows: saving the replaced database waits a
 * moment and tries again rather than fail.
 */
async function retryBusy<T>(fn: () => Promise<T>, signal: AbortSignal, attempts = 10): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      const busy = (error as { code?: string }).code === '53300' || /too many connections/.test(String((error as Error)?.message));
      if (!busy || attempt >= attempts || signal.aborted) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
}

/** The message without its final full stop: it is followed by more sentences. */
function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).trim().replace(/\.$/, '');
}
