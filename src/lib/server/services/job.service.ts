import type { QueueStatus } from '../../shared/types';
import type { StorageRepository } from '../repositories/storage.repository';
import { assessBackupHealth, type BackupHealth } from './backup-health';
import { BackupSchedule } from './backup-schedule';
import type { DatabaseBackupService } from './database-backup.service';
import { badRequest, ServiceError } from '../errors';
import { JobHistory, type LastRun } from './job-history';
import type { MaintenanceService } from './maintenance.service';
import type { OperationLock } from './operation-lock';
import type { SystemConfigService } from './system-config.service';

export const BACKUP_DATABASE = 'backup-database';
/** Served by DrillService; listed here so Job Queues shows it beside the backups. */
const RESTORE_DRILL_QUEUE = 'restore-drill';
const QUEUES = [{ name: BACKUP_DATABASE, title: 'Backup Database' }] as const;
export type JobName = (typeof QUEUES)[number]['name'];

export type { LastRun };

export type JobTrigger = 'manual' | 'schedule';

export interface StartedJob {
  name: JobName | typeof RESTORE_DRILL_QUEUE;
  startedAt: string;
  /** Settles when the job has finished (never rejects: failures are in the result). */
  done: Promise<LastRun>;
}

type Listener = (statuses: QueueStatus[]) => void;

export interface JobServiceDeps {
  backups: DatabaseBackupService;
  lock: OperationLock;
  systemConfig: SystemConfigService;
  maintenance: MaintenanceService;
  storage: StorageRepository;
  /** UPLOAD_LOCATION/.lifeboat: outside the database a restore replaces. */
  stateDir: string;
  log: (line: string) => void;
  logError: (line: string) => void;
  /** Retention for every kind of file, run after each successful backup under the job's lock; without it, routine backups by count only. */
  retention?: { run(options: { justMade: string }): Promise<unknown> };
  /** Told of each finished backup (off-site copy, alerts); never awaited, and its failures never touch the job. */
  onBackupFinished?: (result: LastRun) => void;
  /** The "Restore Drill" queue: its status, and a drill of the newest backup on request. */
  drills?: { queueStatus(): Promise<QueueStatus>; startNewest(): Promise<{ startedAt: string; done: Promise<unknown> }> };
}

/** Progress is pushed at most this often; starts and ends at once. */
const PROGRESS_INTERVAL_MS = 250;

/**
 * The job queues ("Backup Database"). One job runs at a time under the operation lock; a second
 * request gets 409 and never a second pg_dump. Counts and the last run are kept by JobHistory;
 * the timer of scheduled backups is BackupSchedule's. Every change is broadcast to subscribers
 * (the Server-Sent Events endpoint).
 */
export class JobService {
  private readonly history: JobHistory;
  private readonly backupSchedule: BackupSchedule;
  private running: { name: JobName; startedAt: Date; bytes: number; controller: AbortController; done: Promise<LastRun> } | null = null;
  private readonly listeners = new Set<Listener>();
  private lastProgressAt = 0;
  private progressTimer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: JobServiceDeps) {
    this.history = new JobHistory(deps, QUEUES.map((queue) => queue.name));
    this.backupSchedule = new BackupSchedule({ ...deps, onTime: () => this.onSchedule() });
  }

  /** Reads the history once (see JobHistory.load). */
  load(): Promise<void> {
    return this.history.load();
  }

  async getStatuses(): Promise<QueueStatus[]> {
    await this.load();
    if (this.deps.drills && !this.drillStatus) this.drillStatus = await this.deps.drills.queueStatus().catch(() => null);
    return this.snapshot();
  }

  /** The drill queue's last known status (DrillService tells of each change: refreshDrills). */
  private drillStatus: QueueStatus | null = null;

  async refreshDrills(): Promise<void> {
    if (!this.deps.drills) return;
    this.drillStatus = await this.deps.drills.queueStatus().catch(() => this.drillStatus);
    this.broadcast();
  }

  private snapshot(): QueueStatus[] {
    const backups = QUEUES.map(({ name, title }) => {
      const queue = this.history.queue(name);
      const active = this.running?.name === name;
      return {
        name,
        title,
        active: active ? 1 : 0,
        waiting: 0,
        completed: queue.completed,
        failed: queue.failed,
        progressBytes: active ? this.running!.bytes : null,
        lastRun: queue.lastRun,
      };
    });
    return this.drillStatus ? [...backups, this.drillStatus] : backups;
  }

  /** The listener gets the current statuses at once, then every change. */
  async subscribe(listener: Listener): Promise<() => void> {
    await this.load();
    this.listeners.add(listener);
    listener(this.snapshot());
    return () => this.listeners.delete(listener);
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  private broadcast(): void {
    this.cancelProgressTick();
    this.lastProgressAt = Date.now();
    const statuses = this.snapshot();
    for (const listener of this.listeners) {
      try {
        listener(statuses);
      } catch {
        // A closed stream must not stop the others (it unsubscribes itself).
      }
    }
  }

  private cancelProgressTick(): void {
    if (this.progressTimer) clearTimeout(this.progressTimer);
    this.progressTimer = null;
  }

  /** Progress ticks come per chunk: broadcast at most a few times a second, and always the latest. */
  private progress(bytes: number): void {
    if (!this.running) return;
    this.running.bytes = bytes;
    const wait = PROGRESS_INTERVAL_MS - (Date.now() - this.lastProgressAt);
    if (wait <= 0) this.broadcast();
    else this.progressTimer ??= setTimeout(() => this.broadcast(), wait);
  }

  /** POST /api/jobs. Resolves once the job has started; 409 when a backup or restore already runs. */
  async create(name: unknown): Promise<StartedJob> {
    if (name === RESTORE_DRILL_QUEUE && this.deps.drills) {
      const { startedAt, done } = await this.deps.drills.startNewest();
      return { name: RESTORE_DRILL_QUEUE, startedAt, done: done.then(() => this.drillStatus?.lastRun as LastRun) };
    }
    if (!QUEUES.some((queue) => queue.name === name)) {
      throw badRequest(`Unknown job ${JSON.stringify(name ?? null)}: use {"name": "${BACKUP_DATABASE}"}.`);
    }
    await this.load();
    if (this.deps.maintenance.isActive()) throw new ServiceError(503, 'Server is in maintenance mode: jobs cannot start now.');
    // A restore drill gives way to a backup.
    await this.deps.lock.preempt();
    return this.start(name as JobName, 'manual');
  }

  /** Synchronous up to the lock, so two callers can never both get past it. */
  private start(name: JobName, trigger: JobTrigger): StartedJob {
    const release = this.deps.lock.acquire('backup');
    const controller = new AbortController();
    const startedAt = new Date();
    const done = this.runBackup(startedAt, controller.signal, trigger).finally(() => {
      this.running = null;
      release();
      this.broadcast();
    });
    this.running = { name, startedAt, bytes: 0, controller, done };
    this.broadcast();
    return { name, startedAt: startedAt.toISOString(), done };
  }

  private async runBackup(startedAt: Date, signal: AbortSignal, trigger: JobTrigger): Promise<LastRun> {
    const queue = this.history.queue(BACKUP_DATABASE);
    this.deps.log(`Database backup started (${trigger})`);
    let result: LastRun;
    try {
      queue.running = { startedAt: startedAt.toISOString(), pid: process.pid };
      await this.history.persist();
      const { filename, filesize } = await this.deps.backups.createBackup({ kind: 'routine', signal, onBytes: (bytes) => this.progress(bytes) });
      // No late progress tick after this: the next broadcast is the finished job's (in start()).
      this.cancelProgressTick();
      result = { result: 'success', startedAt: startedAt.toISOString(), durationMs: Date.now() - startedAt.getTime(), error: null, filename };
      queue.completed++;
      queue.lastSuccessAt = startedAt.toISOString();
      this.deps.log(`Database backup ${filename} written (${filesize} bytes in ${result.durationMs} ms)`);
      await this.retention(filename);
    } catch (error) {
      const message = signal.aborted ? `Cancelled: the server is shutting down (${(error as Error).message})` : (error as Error).message;
      result = { result: 'failed', startedAt: startedAt.toISOString(), durationMs: Date.now() - startedAt.getTime(), error: message, filename: null };
      queue.failed++;
      this.deps.logError(`Database backup failed: ${message}`);
    }
    queue.lastRun = result;
    queue.running = null;
    await this.history.persist().catch((error) => this.deps.logError(`Could not save the job history: ${(error as Error).message}`));
    try {
      this.deps.onBackupFinished?.(result);
    } catch (error) {
      this.deps.logError(`After the backup: ${(error as Error).message}`);
    }
    return result;
  }

  /** Retention problems are logged but do not turn a good backup into a failed one. */
  private async retention(justMade: string): Promise<void> {
    try {
      if (this.deps.retention) {
        await this.deps.retention.run({ justMade });
        return;
      }
      const { keepLastAmount } = (await this.deps.systemConfig.get()).backup.database;
      const removed = await this.deps.backups.applyRetention(keepLastAmount, justMade);
      if (removed.length) this.deps.log(`Retention (keep ${keepLastAmount}) removed ${removed.join(', ')}`);
    } catch (error) {
      this.deps.logError(`Backup retention failed: ${(error as Error).message}`);
    }
  }

  /** The newest successful routine backup: from the job history or, when newer, the files. */
  async backupHealth(now = new Date()): Promise<BackupHealth> {
    await this.load();
    // An unreadable backups folder must not take the overview down: the job history still tells.
    const [config, files] = await Promise.all([this.deps.systemConfig.get(), this.deps.backups.listBackups().catch(() => [])]);
    const candidates = files.filter((file) => file.kind === 'routine').map((file) => new Date(file.createdAt).getTime());
    const recorded = this.history.queue(BACKUP_DATABASE).lastSuccessAt;
    if (recorded) candidates.push(new Date(recorded).getTime());
    const newest = candidates.length ? new Date(Math.max(...candidates)) : null;
    return assessBackupHealth(config.backup.database, newest, now);
  }

  /** Starts the schedule from the saved config, and follows its changes and the end of maintenance. */
  async startScheduler(): Promise<void> {
    await this.load();
    await this.backupSchedule.start();
  }

  get nextScheduledRun(): Date | null {
    return this.backupSchedule.nextRun;
  }

  private async onSchedule(): Promise<void> {
    if (this.deps.maintenance.isActive()) {
      this.deps.log('Scheduled database backup skipped: the server is in maintenance mode');
      return;
    }
    let job: StartedJob;
    try {
      await this.deps.lock.preempt();
      job = this.start(BACKUP_DATABASE, 'schedule');
    } catch (error) {
      // 409: a backup (manual or the previous scheduled one) or a restore is running.
      this.deps.log(`Scheduled database backup skipped: ${(error as Error).message}`);
      return;
    }
    await job.done;
  }

  /** On shutdown: no new runs, and a running backup is cancelled (pg_dump killed, .tmp removed) before the database stops. */
  async stop(): Promise<void> {
    this.backupSchedule.stop();
    const running = this.running;
    if (running) {
      running.controller.abort();
      await running.done;
    }
    if (this.progressTimer) clearTimeout(this.progressTimer);
    await this.history.settled();
  }
}
