import { join } from 'node:path';
import { Cron } from 'croner';
import { cronError } from '../../shared/cron-schedule';
import type { BackupDrill, DrillSettings, MaintenanceStatus, QueueStatus } from '../../shared/types';
import { formatDuration } from '../../shared/format';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { derivedNameBase } from '../db/roles';
import { ChildProcessError } from '../process/child';
import { FileDigest } from '../backup/manifest';
import { SchemaTooNewError } from '../db/migrator';
import type { DrillRepository } from '../repositories/drill.repository';
import { prelude, type RestoreRepository } from '../repositories/restore.repository';
import type { StorageRepository } from '../repositories/storage.repository';
import { DumpLogin } from '../restore/dump-login';
import { checkExtensions, checkInstalledExtensions } from '../restore/extensions';
import { NewerBackupError } from '../restore/migrate';
import { loadDumpParallel } from '../restore/parallel-load';
import { RestoreLog, type RestoreLogSink } from '../restore/restore-log';
import { validateDumpFile, type ValidatedDump } from '../restore/validate-backup';
import { APP_VERSION } from '../version';
import type { DatabaseBackupService } from './database-backup.service';
import { conflict, ServiceError } from '../errors';
import type { FileUse } from './file-use';
import type { OperationLock } from './operation-lock';
import type { VerificationService } from './verification.service';

export const RESTORE_DRILL = 'restore-drill';
const LOG_LINES = 200;

export interface DrillDeps {
  config: Config;
  db: Database;
  restoreRepository: RestoreRepository;
  repository: DrillRepository;
  backups: DatabaseBackupService;
  verification: VerificationService;
  lock: OperationLock;
  fileUse: FileUse;
  storage: StorageRepository;
  stateDir: string;
  /** Drills only run while the app is online: never in maintenance mode. */
  maintenanceActive: () => boolean;
  log: (line: string) => void;
  onFailed: (filename: string, error: string) => void;
  onChange?: () => void;
}

interface DrillHistory {
  completed: number;
  failed: number;
  lastRun: QueueStatus['lastRun'];
}

class DrillCancelled extends Error {}

/**
 * The drill's lines and progress, kept for its record instead of the maintenance status: a
 * drill never puts the app in maintenance mode.
 */
class DrillSink implements RestoreLogSink {
  status: MaintenanceStatus;
  readonly lines: string[] = [];

  private toldAt = 0;

  constructor(
    private readonly echo: (line: string) => void,
    /** Told of a new stage, at most once a second (Job Queues shows it). */
    private readonly onStage: () => void = () => undefined,
  ) {
    this.status = { active: false, action: null, task: 'restore', progress: 0, error: null, backup: null, restorePoint: null, startedAt: null, finishedAt: null, log: [], stage: null, etaSeconds: null } as unknown as MaintenanceStatus;
  }

  async setStatus(patch: Partial<MaintenanceStatus>, logLine?: string): Promise<void> {
    const stageChanged = patch.stage !== undefined && patch.stage !== this.status.stage;
    this.status = { ...this.status, ...patch };
    if (stageChanged && Date.now() - this.toldAt >= 1000) {
      this.toldAt = Date.now();
      this.onStage();
    }
    if (logLine) await this.log(logLine);
  }

  async log(line: string): Promise<void> {
    this.lines.push(`${new Date().toISOString()} ${line}`);
    if (this.lines.length > LOG_LINES) this.lines.splice(0, this.lines.length - LOG_LINES);
    this.echo(line);
  }
}

/**
 * Restore drills: a backup restored into a scratch database beside the live one, by the same
 * path as a real restore (validation, restore filter, restricted psql as an unprivileged role,
 * parallel load), then this app's migrations and health check on it, its rows compared with the
 * manifest, and the scratch database dropped. The app stays online throughout. One at a time,
 * under the operation lock: never beside a backup or restore, and a restore or backup that
 * wants the lock cancels a running drill (see OperationLock.preempt).
 */
export class DrillService {
  private current: { filename: string; startedAt: Date; controller: AbortController; done: Promise<BackupDrill>; sink: DrillSink } | null = null;
  private history: DrillHistory | null = null;

  constructor(private readonly deps: DrillDeps) {}

  private get historyFile(): string {
    return join(this.deps.stateDir, 'drill-history.json');
  }

  /** The scratch database's name: fixed per instance, so a crash's leftover is found and dropped by the next drill. */
  get scratchDatabase(): string {
    return `${derivedNameBase(this.deps.db.connection.database)}__lifeboat_drill`;
  }

  get running(): { filename: string; startedAt: Date; stage: string | null; progress: number } | null {
    const current = this.current;
    return current ? { filename: current.filename, startedAt: current.startedAt, stage: current.sink.status.stage ?? null, progress: current.sink.status.progress ?? 0 } : null;
  }

  /**
   * Starts a drill of `filename` in the background (the API answers 202). 400/404 for a bad or
   * missing name, 409 while a backup, restore or another drill runs, 503 in maintenance mode.
   */
  async start(filename: unknown): Promise<{ filename: string; startedAt: string; done: Promise<BackupDrill> }> {
    await this.deps.backups.backupPath(filename);
    const name = filename as string;
    if (this.deps.maintenanceActive()) throw new ServiceError(503, 'The server is in maintenance mode: a restore drill cannot start now.');
    if (this.current) throw conflict(`A restore drill of ${this.current.filename} is already running; wait for it to finish.`);
    // The start's removal of a leftover scratch database may hold the lock for a moment.
    await this.deps.lock.preempt();
    if (this.current) throw conflict(`A restore drill of ${(this.current as { filename: string }).filename} is already running; wait for it to finish.`);
    const controller = new AbortController();
    const release = this.deps.lock.acquire('drill', () => this.cancel('a restore or backup needs the database'));
    const startedAt = new Date();
    const sink = new DrillSink(
      (line) => this.deps.log(`Restore drill: ${line}`),
      () => this.deps.onChange?.(),
    );
    const done = this.run(name, startedAt, controller.signal, sink).finally(() => {
      release();
      this.current = null;
      this.deps.onChange?.();
    });
    this.current = { filename: name, startedAt, controller, done, sink };
    await this.deps.backups.manifests.update(name, (m) => ({ ...m, drill: { status: 'running', at: startedAt.toISOString(), durationMs: null, error: null } })).catch(() => null);
    this.deps.onChange?.();
    return { filename: name, startedAt: startedAt.toISOString(), done };
  }

  /**
   * At start: a scratch database left by a drill that was killed is dropped (it belongs to the
   * restore role, which the next restore must be able to replace). Only when no process holds the
   * operation lock: a web server's drill is never touched by a command line starting beside it.
   */
  async removeLeftover(): Promise<void> {
    const admin = this.deps.db.admin ?? this.deps.db.connection;
    let release: () => void;
    let removal: Promise<void> = Promise.resolve();
    try {
      // A backup or restore asked for meanwhile waits for this moment's work rather than get 409.
      release = this.deps.lock.acquire('drill', () => removal);
    } catch {
      return;
    }
    removal = (async () => {
      if (!(await this.deps.restoreRepository.databaseExists(admin, this.scratchDatabase))) return;
      await this.deps.restoreRepository.dropDatabase(admin, this.scratchDatabase);
      this.deps.log(`Dropped the scratch database "${this.scratchDatabase}" of a restore drill that was interrupted`);
    })()
      .catch(() => undefined)
      .finally(() => release());
    await removal;
  }

  /** Stops a running drill (its scratch database dropped) and waits for it. */
  async cancel(reason: string): Promise<void> {
    const current = this.current;
    if (!current) return;
    current.controller.abort(new DrillCancelled(`Cancelled: ${reason}`));
    await current.done.catch(() => undefined);
  }

  private cron: Cron | null = null;
  private retry: NodeJS.Timeout | null = null;

  /** Replaces the weekly timer (Settings > Backup > Restore drill). */
  schedule(settings: DrillSettings): void {
    this.cron?.stop();
    this.cron = null;
    if (!settings.enabled || cronError(settings.cronExpression)) return;
    this.cron = new Cron(settings.cronExpression.trim(), { mode: '5-or-6-parts', unref: true, catch: (error) => this.deps.log(`Drill scheduler error: ${String(error)}`) }, () => this.onSchedule(0));
  }

  get nextScheduledRun(): Date | null {
    return this.cron?.nextRun() ?? null;
  }

  /** A backup or restore running at the drill's time delays it (every 5 minutes, for up to 2 hours); maintenance mode skips it. */
  private async onSchedule(attempt: number): Promise<void> {
    if (this.deps.maintenanceActive()) return this.deps.log('Scheduled restore drill skipped: the server is in maintenance mode');
    try {
      await this.startNewest();
    } catch (error) {
      if ((error as ServiceError).status === 409 && attempt < 24) {
        this.retry = setTimeout(() => void this.onSchedule(attempt + 1), 5 * 60_000);
        this.retry.unref();
        return;
      }
      this.deps.log(`Scheduled restore drill skipped: ${messageOf(error)}`);
    }
  }

  /** On shutdown: no new drills, and a running one is cancelled (its scratch database dropped). */
  async stop(): Promise<void> {
    this.cron?.stop();
    this.cron = null;
    if (this.retry) clearTimeout(this.retry);
    await this.cancel('the server is shutting down');
  }

  /** A drill of the newest backup (Job Queues, and the weekly schedule). */
  async startNewest(): Promise<{ filename: string; startedAt: string; done: Promise<BackupDrill> }> {
    const newest = await this.newestBackup();
    if (!newest) throw new ServiceError(404, 'There is no backup to test yet: make one first.');
    return this.start(newest);
  }

  /** The newest local backup, for the weekly drill; null when there is none. */
  async newestBackup(): Promise<string | null> {
    const files = await this.deps.backups.listBackups().catch(() => []);
    return files.find((file) => file.kind === 'routine')?.filename ?? files[0]?.filename ?? null;
  }

  async queueStatus(): Promise<QueueStatus> {
    const history = await this.loadHistory();
    const running = this.running;
    return {
      name: RESTORE_DRILL,
      title: 'Restore Drill',
      active: running ? 1 : 0,
      waiting: 0,
      completed: history.completed,
      failed: history.failed,
      progressBytes: null,
      lastRun: history.lastRun,
      running: running ? { filename: running.filename, startedAt: running.startedAt.toISOString(), stage: running.stage } : null,
    };
  }

  private async loadHistory(): Promise<DrillHistory> {
    this.history ??= (await this.deps.storage.readJson<DrillHistory>(this.historyFile).catch(() => null)) ?? { completed: 0, failed: 0, lastRun: null };
    return this.history;
  }

  private async run(filename: string, startedAt: Date, signal: AbortSignal, sink: DrillSink): Promise<BackupDrill> {
    const log = new RestoreLog(sink, () => undefined);
    const releaseFile = this.deps.fileUse.acquire(filename, 'a restore drill');
    let error: string | null = null;
    try {
      await this.drill(filename, log, signal);
    } catch (cause) {
      // A step stopped by the cancel throws its own AbortError ("The operation was aborted"): say why it was
      // cancelled. A step's own failure stays the error, even when a cancel arrives during the cleanup after it.
      error = messageOf(stoppedByCancel(cause, signal) ? signal.reason : cause);
      await log.info(`Drill failed: ${error}`).catch(() => undefined);
    } finally {
      releaseFile();
    }
    const durationMs = Date.now() - startedAt.getTime();
    const drill: BackupDrill = { status: error ? 'failed' : 'passed', at: startedAt.toISOString(), durationMs, error, log: error ? sink.lines.slice(-60) : undefined };
    await this.deps.backups.manifests.update(filename, (m) => ({ ...m, drill })).catch(() => null);
    const history = await this.loadHistory();
    if (error) history.failed++;
    else history.completed++;
    history.lastRun = { result: error ? 'failed' : 'success', startedAt: startedAt.toISOString(), durationMs, error, filename };
    await this.deps.storage.writeJsonAtomic(this.historyFile, history).catch(() => undefined);
    this.deps.log(error ? `Restore drill of ${filename} failed after ${formatDuration(durationMs)}: ${error}` : `Restore drill of ${filename} passed in ${formatDuration(durationMs)}`);
    // A cancelled drill is not a failed backup: no alert.
    if (error && !signal.aborted) this.deps.onFailed(filename, error);
    return drill;
  }

  /** The steps; the scratch database is dropped whatever happens. */
  private async drill(filename: string, log: RestoreLog, signal: AbortSignal): Promise<void> {
    const { db, config, restoreRepository: repository } = this.deps;
    const admin = db.admin ?? db.connection;
    const scratch = this.scratchDatabase;
    const check = () => {
      if (signal.aborted) throw signal.reason;
    };

    await log.task('restore', `Checking ${filename}`);
    // Only the administrator can make the throwaway role the dump, the row count, the migrations
    // and the health check run as: the app's own role owns the live database, which a hostile dump
    // run as it could change.
    if (!db.admin) throw new Error('a restore drill needs the database administrator (the embedded cluster, or a superuser given by DB_URL), to run the backup as a throwaway role with no rights on the live database');
    let verification = (await this.deps.backups.manifests.read(filename))?.verification;
    if (!verification || verification.status !== 'verified') verification = await this.deps.verification.verify(filename);
    if (verification.status === 'corrupted') throw new Error(verification.error ?? 'the backup is corrupted');
    const manifest = await this.deps.backups.manifests.read(filename);
    // What is loaded is hashed on the way: the drill vouches for the bytes that were verified, not for a file replaced since.
    const loaded = new FileDigest();
    const dump: ValidatedDump = await validateDumpFile(repository, await this.deps.backups.backupPath(filename));
    const extensions = await checkExtensions(repository, admin, dump);
    check();

    const facts = await repository.stagingFacts(admin);
    if (!facts) throw new Error(`the database "${db.connection.database}" was not found`);
    if (!facts.superuser && !facts.createDb) throw new Error(`a drill restores into a scratch database, and the role "${admin.user}" may not create databases (CREATEDB)`);
    if (facts.serverMajor < 15 && !facts.superuser) throw new Error('before PostgreSQL 15 only a superuser can prepare a scratch database for the drill');
    const steps = { config, db, repository };
    // A leftover of a drill that was killed.
    await repository.dropDatabase(admin, scratch);
    const login = await DumpLogin.forRestore(steps, true, log);
    let created = false;
    try {
      await repository.createDatabaseLike(admin, scratch, facts, login.temporary ? login.role : facts.owner);
      created = true;
      const verified = await login.verify(scratch, log);
      if (db.admin) {
        await repository.createExtensions(db.admin, scratch, extensions, verified.role);
        if (facts.serverMajor < 15) await repository.givePublicSchema(db.admin, scratch, verified.role);
      }
      check();
      await log.task('restore', `Restoring ${filename} into the scratch database "${scratch}"`);
      const started = Date.now();
      const file = await repository.openDump(dump.path);
      try {
        const result = await loadDumpParallel(steps, dump, log, { login: verified.connection, database: scratch, prelude: prelude('staged', extensions), extensions }, {
          signal,
          file,
          jobs: Math.max(1, config.restoreJobs),
          spoolFolder: join(this.deps.stateDir, 'drill-spool'),
          onProgress: ({ fraction, detail }) => log.progress(fraction, detail),
          onFileChunk: (chunk) => loaded.update(chunk),
          // zlib verified these bytes whole (compared below): igzip may inflate them.
          igzip: manifest?.verification.status === 'verified' && manifest.verification.sha256 === manifest.sha256 ? config.igzip : null,
        });
        await log.info(`Loaded ${result.tables} table(s) and ${result.postDataUnits} index, constraint and other step(s) in ${formatDuration(Date.now() - started)}`);
      } finally {
        await file.close();
      }
      await checkInstalledExtensions(repository, admin, scratch);
      check();
      const sha256 = loaded.digest();
      if (manifest && sha256 !== manifest.sha256) {
        // Verified again now: the list and the alerts say it is corrupted.
        await this.deps.verification.verify(filename);
        throw new Error(`the file changed since it was verified: the bytes loaded have the SHA-256 ${sha256}, its manifest says ${manifest.sha256}`);
      }

      // As the drill's restore role from here on: the scratch database's objects are the dump's.
      const asRestoreRole = verified.connection;
      // Rows before migrations: what the backup holds.
      if (manifest && Object.keys(manifest.tables).length) {
        const counts = await this.deps.repository.countRows(asRestoreRole, scratch, Object.keys(manifest.tables));
        const wrong = Object.entries(manifest.tables).filter(([table, rows]) => counts[table] !== rows);
        if (wrong.length) {
          throw new Error(
            `the restored rows differ from the manifest: ${wrong
              .slice(0, 5)
              .map(([table, rows]) => `${table} has ${counts[table] ?? 'no table'} instead of ${rows}`)
              .join('; ')}`,
          );
        }
        await log.info(`Rows match the manifest in all ${Object.keys(manifest.tables).length} table(s)`);
      }

      // No hand-over to the app's role (a real restore's last step): the scratch database is dropped anyway.
      await log.task('migrations', 'Running migrations on the scratch database');
      try {
        const ran = await this.deps.repository.migrate(asRestoreRole, scratch);
        await log.info(ran.length ? `Applied ${ran.length} migration(s): ${ran.join(', ')}` : 'The schema is already at this version: no migration needed');
      } catch (cause) {
        if (cause instanceof SchemaTooNewError) throw new NewerBackupError(cause);
        throw cause;
      }
      check();
      await log.task('health', 'Health check');
      const { state, hasAdmin } = await this.deps.repository.health(asRestoreRole, scratch);
      if (state.pending.length) throw new Error(`the schema is not at this version after migrations: ${state.pending.map((m) => m.name).join(', ')} did not run`);
      if (!hasAdmin) throw new Error('the backup has no admin user, so nobody could sign in to the restored instance');
      await log.info(`Health check passed: the schema is at ${state.version ?? 'none'} (Lifeboat ${APP_VERSION}), an admin exists`);
    } finally {
      if (created || signal.aborted) {
        await repository.terminateSessionsOf(admin, scratch, login.role).catch(() => undefined);
        await repository.dropDatabase(admin, scratch).catch((error) => log.info(`Could not drop the scratch database "${scratch}" (${messageOf(error)}); the next drill drops it`));
      }
      await login.release(log);
    }
  }
}

/** The error a step threw because the drill was cancelled: the reason itself, an AbortError, or a child killed for the signal. */
function stoppedByCancel(error: unknown, signal: AbortSignal): boolean {
  if (!signal.aborted) return false;
  return error === signal.reason || (error as Error | undefined)?.name === 'AbortError' || (error instanceof ChildProcessError && error.cancelled);
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).trim().replace(/\.$/, '');
}
