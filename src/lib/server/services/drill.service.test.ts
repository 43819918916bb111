import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startChild } from '../process/child';
import { DrillService } from './drill.service';
import { FileUse } from './file-use';
import { OperationLock } from './operation-lock';

const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

/** A drill service over small fakes, whose steps (the private `drill`) are replaced by the test's. */
function drillWithSteps(steps: (signal: AbortSignal) => Promise<void>) {
  const stateDir = mkdtempSync(join(tmpdir(), 'lifeboat-drill-'));
  folders.push(stateDir);
  const lock = new OperationLock(stateDir);
  const alerts: string[] = [];
  const drills = new DrillService({
    db: { connection: { database: 'immich' } },
    backups: { backupPath: async () => '/nowhere', manifests: { update: async () => null, read: async () => null } },
    lock,
    fileUse: new FileUse(),
    storage: { readJson: async () => null, writeJsonAtomic: async () => undefined },
    stateDir,
    maintenanceActive: () => false,
    log: () => undefined,
    onFailed: (_filename: string, error: string) => alerts.push(error),
  } as never);
  (drills as unknown as { drill: (filename: string, log: unknown, signal: AbortSignal) => Promise<void> }).drill = (_filename, _log, signal) => steps(signal);
  return { drills, lock, alerts };
}

describe('a drill cancelled for a backup or restore', () => {
  it('reports why it was cancelled, not the AbortError of the step it stopped', async () => {
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const { drills, lock, alerts } = drillWithSteps(
      (signal) =>
        new Promise<void>((_resolve, reject) => {
          started();
          // As a child process or stream given the signal fails: its own AbortError.
          signal.addEventListener('abort', () => reject(new DOMException('The operation was aborted', 'AbortError')));
        }),
    );
    const { done } = await drills.start('immich-db-backup-1.sql.gz');
    await running;
    await lock.preempt();
    const drill = await done;
    expect(drill.status).toBe('failed');
    expect(drill.error).toMatch(/^Cancelled: a restore or backup needs the database/);
    expect(alerts).toEqual([]);
  });

  it('reports why it was cancelled when the step was a child process the cancel killed', async () => {
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const { drills, lock } = drillWithSteps(async (signal) => {
      const child = startChild('sleep', ['30'], { stdio: 'ignore', signal });
      started();
      await child.done;
    });
    const { done } = await drills.start('immich-db-backup-1.sql.gz');
    await running;
    await lock.preempt();
    expect((await done).error).toMatch(/^Cancelled: a restore or backup needs the database/);
  });

  it('keeps a step’s own failure when the cancel comes during the cleanup after it', async () => {
    let cleaning!: () => void;
    const inCleanup = new Promise<void>((resolve) => (cleaning = resolve));
    const { drills, lock } = drillWithSteps(async () => {
      try {
        throw new Error('the restored rows differ from the manifest: users has 3 instead of 4');
      } finally {
        // Dropping the scratch database takes a moment.
        cleaning();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    });
    const { done } = await drills.start('immich-db-backup-1.sql.gz');
    await inCleanup;
    await lock.preempt();
    const drill = await done;
    expect(drill.error).toBe('the restored rows differ from the manifest: users has 3 instead of 4');
  });
});
