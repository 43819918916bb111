import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes, formatDuration } from '../../shared/format';
import type { MaintenanceStatus } from '../../shared/types';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { checkHealth } from '../restore/health-check';
import { disconnect } from '../restore/disconnect';
import { loadDump } from '../restore/load-dump';
import { loadDumpParallel } from '../restore/parallel-load';
import { migrateRestored } from '../restore/migrate';
import { createRestorePoint } from '../restore/restore-point';
import { RestoreLog } from '../restore/restore-log';
import type { StagedDatabase } from '../restore/staged-database';
import { DumpLogin } from '../restore/dump-login';
import { checkExtensions, checkInstalledExtensions } from '../restore/extensions';
import { prepareLoad, type PreparedLoad } from '../restore/prepare-load';
import { prelude, RestoreRepository, type DumpExtension } from '../repositories/restore.repository';
import { validateBackup, validateDumpFile, type ValidatedDump } from '../restore/validate-backup';
import type { DatabaseBackupService } from './database-backup.service';
import { ServiceError } from './errors';
import type { MaintenanceService } from './maintenance.service';
import type { OperationLock } from './operation-lock';

/** What a restore needs from the app (the Lifeboat composition root provides it). */
export interface RestoreHost {
  config: Config;
  db: Database;
  maintenance: MaintenanceService;
  lock: OperationLock;
  backups: DatabaseBackupService;
  auth: { hasAdmin(): Promise<boolean> };
  migrate(): Promise<string[]>;
  forgetOnboarding(): void;
  log(line: string): void;
}

interface RestoreResult {
  restorePoint: string;
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

  constructor(
    private readonly host: RestoreHost,
    private readonly repository = new RestoreRepository(),
  ) {}

  /** Step 1, synchronously for the route: 400 bad name or not a dump, 404 missing. */
  validate(name: unknown): Promise<ValidatedDump> {
    return validateBackup(this.host.backups, this.repository, name);
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
    const newToken = wasActive && maintenance.validateToken(token) ? null : await maintenance.start('restore_database', by);
    await maintenance.begin('restore_database', { backup: dump.filename }, `Restore of ${dump.filename} started by ${by}`);
    return { token: newToken, wasActive };
  }

  /**
   * What can refuse a restore before anything changes: no unprivileged role to run the dump as
   * (unless RESTORE_ALLOW_PRIVILEGED), an extension the dump needs that is not allowed or not
   * installed. Returns those extensions.
   */
  private async precheck(dump: ValidatedDump): Promise<DumpExtension[]> {
    DumpLogin.precheck(this.host.config, this.host.db);
    return checkExtensions(this.repository, this.host.db.admin ?? this.host.db.connection, dump);
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
    await this.background;
  }

  /**
   * Work that need not keep the app down, once a restore succeeded: dropping the database a
   * staged restore replaced (else the next restore does it), and compressing the restore point,
   * which is written plain so that making it costs the least downtime. Under the lock, so no
   * restore starts meanwhile; skipped if a backup runs (the restore point then simply stays
   * plain). On shutdown it is abandoned safely.
   */
  private async afterRestore({ restorePoint: name, staged }: RestoreResult): Promise<void> {
    const controller = new AbortController();
    this.stopBackground = () => controller.abort();
    try {
      await this.host.lock.run('backup', async () => {
        if (staged) await this.dropReplaced(staged);
        const compressed = await this.host.backups.compressBackup(name, controller.signal);
        if (this.host.maintenance.status.restorePoint === name) await this.host.maintenance.setStatus({ restorePoint: compressed });
        this.host.log(`Restore point compressed: ${compressed}`);
      });
    } catch (error) {
      const leftover = staged ? '; if the replaced database is still there, the next restore drops it' : '';
      this.host.log(`After the restore: ${(error as Error).message}. The restore point ${name} stays uncompressed${leftover}`);
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
   * The restore itself, one step after another (validation and the lock came before). Returns
   * the restore point on success. (Loading a staged restore while the restore point is made
   * was measured: on 2 cores the two compete, and the whole restore took longer.)
   */
  private async run(dump: ValidatedDump, extensions: DumpExtension[], wasActive: boolean, signal: AbortSignal, file: FileHandle): Promise<RestoreResult | null> {
    const { host, repository } = this;
    const log = new RestoreLog(host.maintenance, (line) => host.log(line));
    const steps = { config: host.config, db: host.db, repository };

    let restorePoint: string;
    try {
      restorePoint = await createRestorePoint(host.backups, () => repository.databaseSize(host.db), log, signal);
      await host.maintenance.setStatus({ restorePoint });
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
      prepared = await prepareLoad(steps, dump, extensions, log);
      ({ staged, login } = prepared);
      await log.task('restore', `Restoring ${dump.filename}`);
      loadStarted = true;
      await this.load(dump, prepared, log, signal, file);
      await checkInstalledExtensions(repository, host.db.admin ?? host.db.connection, prepared.target.database);
      if (staged) {
        await login.handOver(staged.staged, prepared.facts!.owner, prepared.properties!);
        await staged.swapIn();
      } else if (prepared.properties) {
        // In place the dump ran as the database's owner: what it changed about the database itself is undone.
        await repository.setDatabaseProperties(host.db.admin!, host.db.connection.database, prepared.properties);
      }
      committed = true;
      await log.info(staged ? `${dump.filename} restored; the new database took the name "${host.db.connection.database}"` : `${dump.filename} restored`);
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
    await host.maintenance.end({ task: 'done', progress: 1, error: null }, `Restore of ${dump.filename} complete: maintenance mode ended. Sign in with the restored instance's accounts.`);
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
    if (!prepared.staged || config.restoreJobs < 2) return loadDump(steps, dump, log, prepared.target, { signal, file });
    const started = Date.now();
    const result = await loadDumpParallel(steps, dump, log, prepared.target, {
      signal,
      file,
      jobs: config.restoreJobs,
      spoolFolder: join(config.uploadLocation, '.lifeboat', 'restore-spool'),
      onProgress: ({ fraction, detail }) => log.progress(fraction, detail),
    });
    const spool = result.spoolPeakBytes ? `, up to ${formatBytes(result.spoolPeakBytes)} read ahead to disk` : '';
    await log.info(`Loaded ${result.tables} table(s), then ${result.postDataUnits} index, constraint and other step(s), on ${config.restoreJobs} connections in ${formatDuration(Date.now() - started)}${spool}`);
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

  /** A failure here only costs disk space until the next restore. */
  private async dropReplaced(staged: StagedDatabase): Promise<void> {
    const note = (line: string) => {
      this.host.log(line);
      return this.host.maintenance.log(line);
    };
    try {
      await staged.dropReplaced();
      await note(`Dropped the database the restore replaced ("${staged.replaced}")`);
    } catch (error) {
      await note(`Could not drop the database the restore replaced ("${staged.replaced}": ${messageOf(error)}); the next restore drops it`);
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
    context: { dump: ValidatedDump; restorePoint: string; committed: boolean; before: string | null; staged: StagedDatabase | null; signal: AbortSignal; loadStarted?: boolean },
  ): Promise<void> {
    const { host } = this;
    const { restorePoint, signal, staged } = context;
    const failedTask = host.maintenance.status.task;
    const original = `Restore failed: ${messageOf(error)}`;
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
        ? `the restore's transaction was rolled back, so the database is as it was (restore point: ${restorePoint})`
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
        return fail(`${original}. The database was not changed: the backup was being restored into a separate database, ${dropped} (the restore point ${restorePoint} was not needed).`);
      }
      return fail(`${original}. The database was not changed: the restore runs in one transaction, which was rolled back (the restore point ${restorePoint} was not needed).`);
    }

    if (staged?.isSwappedIn) {
      try {
        await log.task('rollback', `Rolling back: the previous database gets its name back (it is kept aside until the restore succeeds)`);
        await host.db.closePool();
        await staged.swapBack();
        host.forgetOnboarding();
        return fail(`${original}. Rolled back to the database as it was before the restore: OK (the restore point ${restorePoint} was not needed)`);
      } catch (swapError) {
        await log.info(`Could not give the previous database its name back (${messageOf(swapError)}): restoring the restore point instead`);
      }
    }

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

/** The message without its final full stop: it is followed by more sentences. */
function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).trim().replace(/\.$/, '');
}
