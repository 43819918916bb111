import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { MaintenanceAction, MaintenanceStatus } from '../../shared/types';
import type { StorageRepository } from '../repositories/storage.repository';
import { hashToken } from './auth.service';

export const MAINTENANCE_COOKIE = 'immich_maintenance_token';
export const ANONYMOUS_ERROR = 'Something went wrong, see logs!';

interface StoredState {
  status: MaintenanceStatus;
  /** Hash of the token of the admin who started maintenance; survives a restore of the sessions table. */
  tokenHash: string | null;
}

const IDLE: MaintenanceStatus = { active: false, action: null, task: 'idle', progress: 0, log: [], error: null };

type Listener = (status: MaintenanceStatus) => void;

/**
 * Maintenance mode and the status of long work. The state lives in a file beside the
 * backups, outside the database a restore replaces, so a restart comes back into it.
 * Every change goes through setStatus(), which stores and then broadcasts.
 */
export class MaintenanceService {
  private state: StoredState = { status: { ...IDLE }, tokenHash: null };
  private readonly listeners = new Set<Listener>();
  private lastStored = 0;

  constructor(
    private readonly stateDir: string,
    private readonly storage: StorageRepository,
  ) {}

  private get file(): string {
    return join(this.stateDir, 'maintenance.json');
  }

  /** Loads the state at start. Work that was running when the process died is reported, never replayed. */
  async load(): Promise<MaintenanceStatus> {
    await this.storage.mkdir(this.stateDir);
    const stored = await this.storage.readJson<StoredState>(this.file);
    if (stored?.status?.active) {
      this.state = stored;
      const { task } = stored.status;
      if (task !== 'done' && task !== 'error' && task !== 'idle') {
        await this.setStatus({
          task: 'error',
          error: `Lifeboat stopped during the "${task}" step (the process was killed or the machine restarted). Nothing was replayed. The database is either as it was or the complete backup: check it, roll back to the restore point, or end maintenance mode.`,
          finishedAt: new Date().toISOString(),
        }, `Interrupted during the "${task}" step by a restart`);
      }
    }
    return this.status;
  }

  get status(): MaintenanceStatus {
    return this.state.status;
  }

  isActive(): boolean {
    return this.state.status.active;
  }

  /** What someone without the maintenance token may see: progress, never error details. */
  publicStatus(privileged: boolean): MaintenanceStatus {
    const status = this.state.status;
    if (privileged) return status;
    return { ...status, error: status.error ? ANONYMOUS_ERROR : null, log: [] };
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The one setter: stores, then broadcasts. Progress never goes backwards within a task. */
  async setStatus(patch: Partial<MaintenanceStatus>, logLine?: string): Promise<void> {
    const previous = this.state.status;
    const next: MaintenanceStatus = { ...previous, ...patch };
    if (patch.task === undefined || patch.task === previous.task) {
      if (patch.progress !== undefined) next.progress = Math.max(previous.progress, Math.min(1, patch.progress));
    }
    if (logLine) next.log = [...previous.log, `${new Date().toISOString()} ${logLine}`];
    this.state = { ...this.state, status: next };
    // Progress ticks are frequent: store them at most once a second; every other change at once.
    const onlyProgress = Object.keys(patch).every((key) => key === 'progress') && !logLine;
    const now = Date.now();
    if (!onlyProgress || now - this.lastStored > 1000) {
      this.lastStored = now;
      await this.storage.writeJsonAtomic(this.file, this.state);
    }
    for (const listener of this.listeners) listener(next);
  }

  async log(line: string): Promise<void> {
    await this.setStatus({}, line);
  }

  /** Enters maintenance mode and returns a token for the admin (browser) who started it. */
  async start(action: MaintenanceAction = 'start', by = 'an administrator'): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    this.state = { status: { ...IDLE, active: true, action, startedAt: new Date().toISOString() }, tokenHash: hashToken(token) };
    await this.setStatus({}, `Maintenance mode started by ${by}`);
    return token;
  }

  async end(): Promise<void> {
    this.state = { status: { ...IDLE }, tokenHash: null };
    await this.storage.writeJsonAtomic(this.file, this.state);
    for (const listener of this.listeners) listener(this.state.status);
  }

  validateToken(token: string | undefined): boolean {
    return Boolean(token && this.state.tokenHash && this.state.status.active && hashToken(token) === this.state.tokenHash);
  }
}
