import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { MaintenanceAction, MaintenanceStatus, MaintenanceTask } from '../../shared/types';
import type { StorageRepository } from '../repositories/storage.repository';
import { hashToken } from './auth.service';
import { isAlive } from '../process/pid';

export const MAINTENANCE_COOKIE = 'immich_maintenance_token';
export const ANONYMOUS_ERROR = 'Something went wrong, see logs!';

/** Steps during which the database may be locked or being replaced. */
export const RUNNING_TASKS: readonly MaintenanceTask[] = ['backup', 'restore', 'migrations', 'health', 'rollback'];

interface StoredState {
  status: MaintenanceStatus;
  /**
   * Hashes of the tokens of the admins (browsers) who started or joined maintenance; they
   * survive a restore of the sessions table. After maintenance ends they still let their
   * holders read the final status (the log), and nothing else.
   */
  tokenHashes: string[];
  /** The process that wrote the state: the web server, or the command line. */
  pid: number;
}

const IDLE: MaintenanceStatus = { active: false, action: null, task: 'idle', progress: 0, log: [], error: null };

type Listener = (status: MaintenanceStatus) => void;

/**
 * Maintenance mode and the status of long work. The state lives in a file beside the
 * backups, outside the database a restore replaces, so a restart comes back into it.
 * Every change goes through setStatus(), which stores and then broadcasts.
 *
 * The web server and the command line share the file: each follows the other's changes
 * (watch()), so a restore run from the command line puts the web server in maintenance mode.
 */
export class MaintenanceService {
  private state: StoredState = { status: { ...IDLE }, tokenHashes: [], pid: process.pid };
  private readonly listeners = new Set<Listener>();
  private lastStored = 0;
  /** Writes are queued: two rename()s of the same .tmp must never race. */
  private writing: Promise<void> = Promise.resolve();
  private watcher: NodeJS.Timeout | null = null;
  /** The state file as load() or the watcher last saw it (inode, mtime, size): any change is read; our own writes are then ignored by pid. */
  private seen = '';

  constructor(
    private readonly stateDir: string,
    private readonly storage: StorageRepository,
  ) {}

  get file(): string {
    return join(this.stateDir, 'maintenance.json');
  }

  /** Loads the state at start. Work that was running when its process died is reported, never replayed. */
  async load(): Promise<MaintenanceStatus> {
    await this.storage.mkdir(this.stateDir);
    // Taken before the read: a change made after it is picked up by watch(), never lost in between.
    this.seen = await this.signature();
    const stored = normalise(await this.storage.readJson<Partial<StoredState> & { tokenHash?: string | null }>(this.file));
    if (!stored) return this.status;
    this.state = stored;
    const { task, active } = stored.status;
    // The command line may be running a restore while the web server starts: its lock says so.
    const lock = await this.storage.readJson<{ pid?: number }>(join(this.stateDir, 'operation.lock')).catch(() => null);
    const runningElsewhere = stored.pid !== process.pid && lock?.pid === stored.pid && isAlive(stored.pid);
    if (active && RUNNING_TASKS.includes(task) && !runningElsewhere) {
      this.state = { ...this.state, pid: process.pid };
      await this.setStatus(
        {
          task: 'error',
          error:
            `The ${describe(stored.status)} was interrupted during the "${task}" step (the process was killed or the machine restarted). ` +
            'Nothing was replayed: a restore loads the backup in one transaction (into a new database swapped in only when complete, or into the live one), so the database is either as it was or the complete backup. ' +
            (stored.status.restorePoint ? `Check it, restore the restore point ${stored.status.restorePoint}, or end maintenance mode.` : 'Check it, or end maintenance mode.'),
          finishedAt: new Date().toISOString(),
        },
        `Interrupted during the "${task}" step by a restart`,
      );
    }
    return this.status;
  }

  /**
   * Follows changes made by another process (the command line, or the web server). Polls the
   * file's identity against what load() or the last read saw, so a change made between load()
   * and watch() is not missed (fs.watchFile only reports changes after its own first look).
   */
  watch(intervalMs = 500): void {
    if (this.watcher) return;
    let busy = false;
    this.watcher = setInterval(() => {
      if (busy) return;
      busy = true;
      void this.reloadIfChanged().finally(() => (busy = false));
    }, intervalMs);
    this.watcher.unref();
  }

  close(): void {
    if (this.watcher) clearInterval(this.watcher);
    this.watcher = null;
  }

  private async reloadIfChanged(): Promise<void> {
    const signature = await this.signature();
    if (signature === this.seen) return;
    this.seen = signature;
    const stored = normalise(await this.storage.readJson<StoredState>(this.file).catch(() => null));
    if (!stored || stored.pid === process.pid) return;
    this.state = stored;
    for (const listener of this.listeners) listener(stored.status);
  }

  /** Every write replaces the file (rename), so its inode changes; mtime and size back that up. */
  private async signature(): Promise<string> {
    const stats = await this.storage.stat(this.file).catch(() => null);
    return stats ? `${stats.ino}:${stats.mtimeMs}:${stats.size}` : 'missing';
  }

  get status(): MaintenanceStatus {
    return this.state.status;
  }

  isActive(): boolean {
    return this.state.status.active;
  }

  /** True while a step that may lock or replace the database runs (here or in another process). */
  isRunning(): boolean {
    return this.state.status.active && RUNNING_TASKS.includes(this.state.status.task);
  }

  /** What someone without the maintenance token or an admin session may see: progress, never error details. */
  publicStatus(privileged: boolean, status: MaintenanceStatus = this.state.status): MaintenanceStatus {
    if (privileged) return status;
    return { ...status, error: status.error ? ANONYMOUS_ERROR : null, log: [] };
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The one setter: stores, then broadcasts. Progress never goes backwards within a task.
   * `patch.log` replaces the log (a new operation starts a new one); `logLine` appends.
   */
  async setStatus(patch: Partial<MaintenanceStatus>, logLine?: string): Promise<void> {
    const previous = this.state.status;
    const next: MaintenanceStatus = { ...previous, ...patch };
    if (patch.task === undefined || patch.task === previous.task) {
      if (patch.progress !== undefined) next.progress = Math.max(previous.progress, Math.min(1, patch.progress));
    }
    if (logLine) next.log = [...(patch.log ?? previous.log), `${new Date().toISOString()} ${logLine}`];
    this.state = { ...this.state, status: next, pid: process.pid };
    // Progress ticks are frequent: store them at most once a second; every other change at once.
    const onlyProgress = Object.keys(patch).every((key) => key === 'progress') && !logLine;
    const now = Date.now();
    if (!onlyProgress || now - this.lastStored > 1000) {
      this.lastStored = now;
      await this.store();
    }
    for (const listener of this.listeners) listener(next);
  }

  async log(line: string): Promise<void> {
    await this.setStatus({}, line);
  }

  /**
   * Enters maintenance mode and returns a token for the admin (browser) who started it.
   * Already in maintenance: this admin joins (gets a token too) and the status is kept.
   */
  async start(action: MaintenanceAction = 'start', by = 'an administrator'): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    if (this.isActive()) {
      this.state = { ...this.state, tokenHashes: [...this.state.tokenHashes, hashToken(token)] };
      await this.setStatus({}, `Maintenance mode joined by ${by}`);
      return token;
    }
    this.state = {
      status: { ...IDLE, active: true, action, startedAt: new Date().toISOString(), finishedAt: null, backup: null, restorePoint: null },
      tokenHashes: [hashToken(token)],
      pid: process.pid,
    };
    await this.setStatus({}, `Maintenance mode started by ${by}`);
    return token;
  }

  /**
   * Starts a new operation inside maintenance mode: a fresh status; the tokens stay, and the
   * log goes on, so whoever opens the page sees everything since maintenance began.
   */
  async begin(action: MaintenanceAction, patch: Partial<MaintenanceStatus>, logLine: string): Promise<void> {
    await this.setStatus(
      { active: true, action, task: 'idle', progress: 0, error: null, backup: null, restorePoint: null, finishedAt: null, startedAt: new Date().toISOString(), ...patch },
      logLine,
    );
  }

  /**
   * Leaves maintenance mode. The final status (log, error, "done") stays readable, so the
   * page that watched the operation can tell how it ended.
   */
  async end(final: Partial<MaintenanceStatus> = {}, logLine = 'Maintenance mode ended'): Promise<void> {
    await this.setStatus({ task: 'idle', progress: 0, error: null, finishedAt: new Date().toISOString(), ...final, active: false }, logLine);
  }

  /** The maintenance admin: a token given by start() while maintenance mode is on. */
  validateToken(token: string | undefined): boolean {
    return this.state.status.active && this.ownsToken(token);
  }

  /** A token of this (or the last) maintenance period: enough to read the full status. */
  ownsToken(token: string | undefined): boolean {
    return Boolean(token && this.state.tokenHashes.includes(hashToken(token)));
  }

  private store(): Promise<void> {
    const snapshot = this.state;
    this.writing = this.writing.catch(() => undefined).then(() => this.storage.writeJsonAtomic(this.file, snapshot));
    return this.writing;
  }
}

function normalise(stored: (Partial<StoredState> & { tokenHash?: string | null }) | null): StoredState | null {
  if (!stored?.status) return null;
  const tokenHashes = stored.tokenHashes ?? (stored.tokenHash ? [stored.tokenHash] : []);
  return { status: { ...IDLE, ...stored.status }, tokenHashes, pid: stored.pid ?? 0 };
}

function describe(status: MaintenanceStatus): string {
  return status.action === 'restore_database' ? `restore${status.backup ? ` of ${status.backup}` : ''}` : 'maintenance operation';
}
