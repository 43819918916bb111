import { join } from 'node:path';
import type { MaintenanceStatus } from '../../shared/types';
import type { StorageRepository } from '../repositories/storage.repository';
import type { DatabaseBackupService } from './database-backup.service';
import type { FileUse } from './file-use';
import type { MaintenanceService } from './maintenance.service';
import type { OperationLock } from './operation-lock';
import { planRetention, staleTemporaryFiles, type RetentionFile, type RetentionPlan } from './retention';
import type { SystemConfigService } from './system-config.service';

export interface RetentionServiceDeps {
  systemConfig: SystemConfigService;
  backups: DatabaseBackupService;
  storage: StorageRepository;
  fileUse: FileUse;
  maintenance: MaintenanceService;
  lock: OperationLock;
  stateDir: string;
  log: (line: string) => void;
  logError: (line: string) => void;
}

interface RetentionState {
  lastRestoredAt: Record<string, string>;
}

const HOUR = 3_600_000;

/**
 * Applies the retention rules (retention.ts) to the backups folder: after each backup (under
 * the job's lock) and hourly (when the lock is free). A file that a restore, download, drill
 * or off-site copy is using is skipped; every deletion is logged with its reason. Remembers
 * when each file was last restored (for uploaded files' days), beside the job history.
 */
export class RetentionService {
  private state: RetentionState | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastTask: string | null = null;

  constructor(private readonly deps: RetentionServiceDeps) {}

  private get file(): string {
    return join(this.deps.stateDir, 'retention.json');
  }

  private async load(): Promise<RetentionState> {
    this.state ??= (await this.deps.storage.readJson<RetentionState>(this.file).catch(() => null)) ?? { lastRestoredAt: {} };
    return this.state;
  }

  /** What a restore uses: the backup it loads and its restore point (plain or compressed) while it runs. */
  private usedBy(name: string): string | null {
    const fromUse = this.deps.fileUse.usedBy(name);
    if (fromUse) return fromUse;
    const status = this.deps.maintenance.status;
    if (!status.active) return null;
    const plain = (value: string | null | undefined) => value?.replace(/\.gz$/, '');
    if (plain(status.backup) === plain(name)) return 'a restore';
    if (plain(status.restorePoint) === plain(name)) return 'a restore (its restore point)';
    return null;
  }

  /** The caller holds the backup lock (the backup job) or nothing changes the folder meanwhile. */
  async run(options: { justMade?: string | null; now?: Date } = {}): Promise<RetentionPlan> {
    const now = options.now ?? new Date();
    const [config, state, listed] = await Promise.all([this.deps.systemConfig.get(), this.load(), this.deps.backups.listBackups()]);
    const folder = this.deps.backups.backupsFolder;
    const files: RetentionFile[] = [];
    for (const file of listed) {
      const stat = file.kind === 'uploaded' ? await this.deps.storage.stat(join(folder, file.filename)).catch(() => null) : null;
      files.push({ name: file.filename, kind: file.kind, createdAt: new Date(file.createdAt), modifiedAt: stat?.mtime ?? new Date(file.createdAt) });
    }
    const plan = planRetention(
      files,
      { database: config.backup.database, restorePointsKeep: config.backup.restorePoints.keepLastAmount, uploadsKeepDays: config.backup.uploads.keepDays },
      { now, justMade: options.justMade, lastRestoredAt: state.lastRestoredAt, usedBy: (name) => this.usedBy(name) },
    );
    for (const { name, reason } of plan.remove) {
      await this.deps.storage.removeIfExists(join(folder, name));
      // The manifest is part of its backup.
      await this.deps.backups.manifests.remove(name);
      this.deps.log(`Retention removed ${name} (${reason})`);
    }
    for (const { name, usedBy } of plan.inUse) this.deps.log(`Retention kept ${name} for now: in use by ${usedBy}`);
    const entries = await this.deps.storage.readdir(folder).catch(() => [] as string[]);
    for (const name of await this.deps.backups.manifests.removeOrphans(entries)) this.deps.log(`Retention removed ${name} (its backup is gone)`);
    for (const name of staleTemporaryFiles(entries, options.justMade ?? null)) {
      if (this.usedBy(name)) continue;
      await this.deps.storage.removeIfExists(join(folder, name));
      this.deps.log(`Retention removed ${name} (left by a failed backup)`);
    }
    if (plan.remove.some(({ name }) => name in state.lastRestoredAt)) {
      for (const { name } of plan.remove) delete state.lastRestoredAt[name];
      await this.deps.storage.writeJsonAtomic(this.file, state);
    }
    return plan;
  }

  /** The hourly pass: skipped while a backup or restore holds the lock. */
  async runIfIdle(now = new Date()): Promise<RetentionPlan | null> {
    if (this.deps.maintenance.isActive()) return null;
    let release: () => void;
    try {
      release = this.deps.lock.acquire('backup');
    } catch {
      return null;
    }
    try {
      return await this.run({ now });
    } catch (error) {
      this.deps.logError(`Retention failed: ${(error as Error).message}`);
      return null;
    } finally {
      release();
    }
  }

  /** Feed with every maintenance status: the end of a restore is the restored file's "last restore". */
  onMaintenance(status: MaintenanceStatus): Promise<void> {
    const previous = this.lastTask;
    this.lastTask = status.task;
    if (status.action !== 'restore_database' || previous === status.task || !status.backup) return Promise.resolve();
    if (status.task !== 'done' && status.task !== 'error') return Promise.resolve();
    const name = status.backup;
    return this.load()
      .then((state) => {
        state.lastRestoredAt[name] = status.finishedAt ?? new Date().toISOString();
        return this.deps.storage.writeJsonAtomic(this.file, state);
      })
      .catch((error) => this.deps.logError(`Could not record the restore of ${name}: ${(error as Error).message}`));
  }

  start(intervalMs = HOUR): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.runIfIdle(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
