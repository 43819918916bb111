import { join } from 'node:path';
import type { QueueStatus } from '../../shared/types';
import { isAlive } from '../process/pid';
import type { StorageRepository } from '../repositories/storage.repository';

export type LastRun = NonNullable<QueueStatus['lastRun']>;

export interface QueueHistory {
  completed: number;
  failed: number;
  lastRun: LastRun | null;
  lastSuccessAt: string | null;
  /** Set while a job runs, so a restart can tell that it was interrupted. */
  running: { startedAt: string; pid: number } | null;
}

const emptyHistory = (): QueueHistory => ({ completed: 0, failed: 0, lastRun: null, lastSuccessAt: null, running: null });

export const INTERRUPTED = 'Lifeboat stopped while this job was running (the process was killed or the machine restarted). No file was kept.';

/**
 * Each queue's counts and last run, kept in a file beside the maintenance state so that they
 * survive restarts and restores. Writes are serialized: two quick changes never race on the
 * same temporary file.
 */
export class JobHistory {
  private readonly queues: Record<string, QueueHistory> = {};
  private loading: Promise<void> | null = null;
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: { storage: StorageRepository; stateDir: string; logError: (line: string) => void },
    private readonly names: readonly string[],
  ) {}

  private get file(): string {
    return join(this.deps.stateDir, 'job-history.json');
  }

  /** Reads the file once. A job recorded as running by a process that is gone was interrupted: it is counted as failed, never replayed. */
  load(): Promise<void> {
    this.loading ??= (async () => {
      await this.deps.storage.mkdir(this.deps.stateDir);
      const stored = (await this.deps.storage.readJson<Record<string, QueueHistory>>(this.file).catch(() => null)) ?? {};
      for (const name of this.names) this.queues[name] = { ...emptyHistory(), ...stored[name] };
      let changed = false;
      for (const queue of Object.values(this.queues)) {
        const running = queue.running;
        if (!running || (running.pid !== process.pid && isAlive(running.pid))) continue;
        queue.running = null;
        queue.failed++;
        queue.lastRun = { result: 'failed', startedAt: running.startedAt, durationMs: 0, error: INTERRUPTED, filename: null };
        this.deps.logError(`A job started at ${new Date(running.startedAt).toISOString()} was interrupted by a restart`);
        changed = true;
      }
      if (changed) await this.persist();
    })();
    return this.loading;
  }

  /** A queue's record (after load): changed in place, then persisted. */
  queue(name: string): QueueHistory {
    return (this.queues[name] ??= emptyHistory());
  }

  persist(): Promise<void> {
    const write = this.writes.then(() => this.deps.storage.writeJsonAtomic(this.file, this.queues));
    this.writes = write.catch(() => undefined);
    return write;
  }

  /** Resolves once every write asked for so far has ended. */
  settled(): Promise<void> {
    return this.writes;
  }
}
