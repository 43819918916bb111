import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageRepository } from '../src/lib/server/repositories/storage.repository';
import { ServiceError } from '../src/lib/server/errors';
import { MaintenanceService } from '../src/lib/server/services/maintenance.service';
import type { MaintenanceStatus } from '../src/lib/shared/types';
import { startInstance, type TestInstance } from './helpers/pg';
import { changeData, seed, snapshot } from './restore-helpers';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-state-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function service(dir: string): MaintenanceService {
  const maintenance = new MaintenanceService(dir, new StorageRepository());
  cleanups.push(() => maintenance.close());
  return maintenance;
}

/** A pid that belongs to no process. */
const DEAD_PID = 2 ** 22 + 12345;

function writeState(dir: string, status: Partial<MaintenanceStatus>, pid: number) {
  const full: MaintenanceStatus = { active: true, action: 'restore_database', task: 'restore', progress: 0.4, log: ['2026-01-01T00:00:00.000Z Restoring x.sql.gz'], error: null, backup: 'x.sql.gz', restorePoint: 'restore-point-x.sql.gz', ...status };
  writeFileSync(join(dir, 'maintenance.json'), JSON.stringify({ status: full, tokenHashes: [], pid }));
}

describe('maintenance state', () => {
  it('reports a step interrupted by a crash after a restart, and never replays it', async () => {
    const dir = stateDir();
    writeState(dir, { task: 'restore' }, DEAD_PID);

    const status = await service(dir).load();

    expect(status).toMatchObject({ active: true, task: 'error', backup: 'x.sql.gz', restorePoint: 'restore-point-x.sql.gz' });
    expect(status.error).toMatch(/interrupted during the "restore" step/);
    expect(status.error).toContain('restore-point-x.sql.gz');
    expect(status.log.at(-1)).toMatch(/Interrupted during the "restore" step/);
    // Stored: the next start finds the same report, still no replay.
    expect((await service(dir).load()).task).toBe('error');
  });

  it('leaves alone a restore that another live process (the command line) is running', async () => {
    const dir = stateDir();
    writeState(dir, { task: 'restore' }, process.ppid);
    writeFileSync(join(dir, 'operation.lock'), JSON.stringify({ pid: process.ppid, name: 'restore' }));

    const status = await service(dir).load();

    expect(status).toMatchObject({ active: true, task: 'restore', error: null });
  });

  it("follows another process's changes to the state file", async () => {
    const dir = stateDir();
    const maintenance = service(dir);
    await maintenance.load();
    const seen = new Promise<MaintenanceStatus>((resolve) => maintenance.subscribe(resolve));
    try {
      // Written between load() and watch(), as can happen while the web server starts.
      writeState(dir, { task: 'backup' }, process.ppid);
      maintenance.watch(50);

      expect(await seen).toMatchObject({ active: true, task: 'backup' });
      expect(maintenance.isActive()).toBe(true);
      expect(maintenance.isRunning()).toBe(true);

      const next = new Promise<MaintenanceStatus>((resolve) => maintenance.subscribe(resolve));
      writeState(dir, { task: 'restore' }, process.ppid);
      expect(await next).toMatchObject({ active: true, task: 'restore' });
    } finally {
      maintenance.close();
    }
  });

  it('gives tokens to the admins who start or join maintenance; they read the final status after it ends', async () => {
    const maintenance = service(stateDir());
    await maintenance.load();
    const first = await maintenance.start('start', 'ada@example.com');
    const second = await maintenance.start('start', 'bob@example.com');
    expect(maintenance.validateToken(first)).toBe(true);
    expect(maintenance.validateToken(second)).toBe(true);
    expect(maintenance.validateToken('guess')).toBe(false);
    expect(maintenance.status.log.map((line) => line.replace(/^\S+ /, ''))).toEqual(['Maintenance mode started by ada@example.com', 'Maintenance mode joined by bob@example.com']);

    await maintenance.end({ task: 'done', progress: 1 }, 'Restore complete');

    expect(maintenance.status).toMatchObject({ active: false, task: 'done', progress: 1 });
    expect(maintenance.validateToken(first)).toBe(false);
    expect(maintenance.ownsToken(first)).toBe(true);
  });

  it('keeps progress monotonic within a task, and restarts it with the next task', async () => {
    const maintenance = service(stateDir());
    await maintenance.start();
    await maintenance.setStatus({ task: 'restore', progress: 0.5 });
    await maintenance.setStatus({ progress: 0.3 });
    expect(maintenance.status.progress).toBe(0.5);
    await maintenance.setStatus({ task: 'migrations', progress: 0 });
    expect(maintenance.status.progress).toBe(0);
  });
});

describe('maintenance mode with a real instance', () => {
  async function instance(): Promise<TestInstance> {
    const created = await startInstance();
    cleanups.push(() => created.close());
    return created;
  }

  it('ends maintenance only when the migrations apply, never during a restore', async () => {
    const { app } = await instance();
    await seed(app.db);
    const { filename } = await app.backups.createBackup();
    await app.maintenance.start('start', 'test');

    await app.db.query("INSERT INTO migrations (name, version) VALUES ('9999999999999-Future', '9.0.0')");
    await expect(app.restore.endMaintenance('test')).rejects.toSatisfy((error: unknown) => error instanceof ServiceError && error.status === 409 && /stays on.*newer/s.test(error.message));
    expect(app.maintenance.isActive()).toBe(true);
    await app.db.query("DELETE FROM migrations WHERE name = '9999999999999-Future'");

    const running = app.restore.startRestore(filename, { by: 'test' });
    await running;
    await expect(app.restore.endMaintenance('test')).rejects.toSatisfy((error: unknown) => error instanceof ServiceError && error.status === 409);
    await new Promise<void>((resolve) => {
      const off = app.maintenance.subscribe((status) => status.task === 'done' && (off(), resolve()));
    });
    expect(app.maintenance.isActive()).toBe(false);
  });

  it('a shutdown during the restore step kills psql: the database is unchanged and the interruption recorded', async () => {
    const { app } = await instance();
    await seed(app.db, { assets: 20000 });
    const { filename } = await app.backups.createBackup();
    await changeData(app.db);
    const current = await snapshot(app.db);
    const dump = await app.restore.validate(filename);

    let aborted: Promise<void> | null = null;
    const off = app.maintenance.subscribe((status) => {
      if (status.task === 'restore' && app.restore.running && !aborted) aborted = app.restore.abort();
    });
    const final = await app.restore.restore(dump, { by: 'test' });
    off();
    await aborted;

    expect(final).toMatchObject({ active: true, task: 'error' });
    expect(final.error).toMatch(/interrupted because the server is shutting down: (the restore's transaction was rolled back|the backup was being loaded into a separate database), so the database is as it was/);
    expect(await snapshot(app.db)).toEqual(current);
    const { rows } = await app.db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'lifeboat-restore'");
    expect(rows[0].n).toBe(0);
  });
});
