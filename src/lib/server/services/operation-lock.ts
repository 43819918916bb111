import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { conflict } from '../errors';
import { isAlive } from '../process/pid';

export type OperationName = 'backup' | 'restore' | 'drill';

/**
 * The one lock for backups and restores: one at a time in this process, and, through a
 * lock file beside the maintenance state, one at a time with the command line too.
 */
export class OperationLock {
  private holder: { name: OperationName; startedAt: Date; preempt?: () => Promise<void> } | null = null;

  constructor(private readonly stateDir: string) {}

  private get file(): string {
    return join(this.stateDir, 'operation.lock');
  }

  get current(): { name: OperationName; startedAt: Date } | null {
    return this.holder;
  }

  /** Runs fn under the lock, or throws 409 at once when another operation holds it. */
  async run<T>(name: OperationName, fn: () => Promise<T>): Promise<T> {
    // A restore drill gives way to every other operation.
    if (name !== 'drill') await this.preempt();
    const release = this.acquire(name);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** `preempt`: how a holder that gives way (a restore drill) is stopped when a backup or restore needs the lock. */
  acquire(name: OperationName, preempt?: () => Promise<void>): () => void {
    if (this.holder) throw conflict(`A ${this.holder.name === 'drill' ? 'restore drill' : this.holder.name} is already running (started ${this.holder.startedAt.toISOString()}); wait for it to finish.`);
    this.takeFile(name);
    this.holder = { name, startedAt: new Date(), preempt };
    return () => {
      this.holder = null;
      rmSync(this.file, { force: true });
    };
  }

  /** Stops a holder that gives way (a restore drill), so that a backup or restore can take the lock; waits until it let go. */
  async preempt(): Promise<void> {
    const holder = this.holder;
    if (holder?.preempt) await holder.preempt();
  }

  private takeFile(name: OperationName): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.file, 'wx');
        writeSync(fd, JSON.stringify({ pid: process.pid, bootId: bootId(), name, startedAt: new Date().toISOString() }));
        closeSync(fd);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const other = this.readFile();
        // After a reboot the recorded pid may belong to an unrelated process: the boot id tells.
        const sameBoot = !other?.bootId || other.bootId === bootId();
        if (other && other.pid !== process.pid && sameBoot && isAlive(other.pid)) {
          throw conflict(`A ${other.name} is already running in another Lifeboat process (pid ${other.pid}); wait for it to finish.`);
        }
        // Left by a process that died (or by this one before a crash): stale.
        rmSync(this.file, { force: true });
      }
    }
    throw conflict('Could not take the backup/restore lock; try again.');
  }

  private readFile(): { pid: number; name: string; bootId?: string } | null {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8'));
    } catch {
      return null;
    }
  }
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

