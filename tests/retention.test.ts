import { readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BACKUP_DATABASE } from '../src/lib/server/services/job.service';
import { restorePointName, routineBackupName } from '../src/lib/shared/backup-name';
import { keepRoutine } from '../src/lib/shared/retention-rules';
import { startInstance, type TestInstance } from './helpers/pg';

let instance: TestInstance;
const lines: string[] = [];
const DAY = 86_400_000;
const folder = () => instance.app.backups.backupsFolder;
// Manifests are part of their backups: checked on their own (see manifestsFollow).
const files = () => readdirSync(folder()).filter((name) => name !== '.immich' && !name.endsWith('.manifest.json')).sort();
/** Every manifest left belongs to a backup still there. */
const manifestsFollow = () => readdirSync(folder()).filter((name) => name.endsWith('.manifest.json')).every((name) => files().includes(name.slice(0, -'.manifest.json'.length)));

function put(name: string, mtime?: Date): string {
  writeFileSync(join(folder(), name), `not a real dump: ${name}`);
  if (mtime) utimesSync(join(folder(), name), mtime, mtime);
  return name;
}

beforeAll(async () => {
  instance = await startInstance({ log: (line) => lines.push(line) });
});
afterAll(async () => {
  await instance?.close();
});
beforeEach(() => {
  lines.length = 0;
});

describe('retention for every kind of file (real backups folder)', () => {
  it('after a backup, restore points beyond the count are deleted, the newest never; each deletion is logged', async () => {
    await instance.app.systemConfig.update({ backup: { restorePoints: { keepLastAmount: 2 } } });
    const points = [1, 2, 3, 4, 5].map((day) => put(restorePointName(new Date(Date.UTC(2025, 0, day)), '1.1.0', '15.18')));
    const run = await (await instance.app.jobs.create(BACKUP_DATABASE)).done;
    await instance.app.backgroundIdle();
    expect(run.result).toBe('success');
    const left = files();
    expect(manifestsFollow()).toBe(true);
    expect(left.filter((name) => name.startsWith('restore-point-'))).toEqual([points[3], points[4]]);
    for (const name of points.slice(0, 3)) expect(lines).toContain(`Retention removed ${name} (restore point beyond the last 2)`);

    await instance.app.systemConfig.update({ backup: { restorePoints: { keepLastAmount: 1 } } });
    await instance.app.retention.run();
    expect(files().filter((name) => name.startsWith('restore-point-'))).toEqual([points[4]]);
  });

  it('a file in use (a download still streaming) is not deleted; once it is done, the next pass deletes it', async () => {
    await instance.app.systemConfig.update({ backup: { database: { keepLastAmount: 1 } } });
    const [old, newer] = [10, 11].map((day) => put(routineBackupName(new Date(Date.UTC(2026, 0, day, 2)), '1.1.0', '15.18')));
    for (const name of files().filter((n) => n.startsWith('immich-db-backup-') && n !== old && n !== newer)) await instance.app.backups.deleteBackups([name]);
    const download = await instance.app.backups.openBackup(old);
    const plan = await instance.app.retention.run();
    expect(plan.inUse).toEqual([{ name: old, usedBy: 'a download' }]);
    expect(files()).toContain(old);
    expect(lines).toContain(`Retention kept ${old} for now: in use by a download`);
    await new Promise<void>((resolve) => download.stream.on('close', resolve).destroy());
    await instance.app.retention.run();
    expect(files()).not.toContain(old);
    expect(files()).toContain(newer);
  });

  it('the backup being restored is in use while the restore runs', async () => {
    const name = put(routineBackupName(new Date(Date.UTC(2020, 0, 1, 2)), '1.1.0', '15.18'));
    await instance.app.maintenance.start('restore_database', 'the retention test');
    await instance.app.maintenance.setStatus({ backup: name, task: 'restore' });
    try {
      const plan = await instance.app.retention.run();
      expect(plan.inUse).toContainEqual({ name, usedBy: 'a restore' });
      expect(files()).toContain(name);
    } finally {
      await instance.app.maintenance.end();
    }
    await instance.app.retention.run();
    expect(files()).not.toContain(name);
  });

  it('daily / weekly / monthly generations: the preview (the same rule the Settings page runs) matches what is kept', async () => {
    const generations = { daily: 5, weekly: 3, monthly: 4 };
    await instance.app.systemConfig.update({ backup: { database: { keepLastAmount: 1, generations } } });
    const start = Date.UTC(2026, 0, 1, 2);
    for (let i = 0; i < 150; i++) put(routineBackupName(new Date(start + i * DAY), '1.1.0', '15.18'));
    const routine = (await instance.app.backups.listBackups()).filter((file) => file.kind === 'routine');
    const preview = keepRoutine(routine.map((file) => ({ name: file.filename, createdAt: new Date(file.createdAt) })), { keepLastAmount: 1, generations });
    expect(preview.size).toBeGreaterThan(5);
    await instance.app.retention.run();
    const kept = (await instance.app.backups.listBackups()).filter((file) => file.kind === 'routine').map((file) => file.filename);
    expect(kept.sort()).toEqual([...preview].sort());
    await instance.app.systemConfig.update({ backup: { database: { generations: null, keepLastAmount: 14 } } });
  });

  it('uploaded files: kept with 0 days; else removed N days after their last restore (or upload)', async () => {
    const now = Date.now();
    const stale = put('uploaded-stale.sql.gz', new Date(now - 40 * DAY));
    const restored = put('uploaded-restored.sql.gz', new Date(now - 40 * DAY));
    const fresh = put('uploaded-fresh.sql.gz', new Date(now - 5 * DAY));
    await instance.app.retention.run();
    expect(files()).toEqual(expect.arrayContaining([stale, restored, fresh]));
    // The restore service reports its end through the maintenance status; retention remembers it.
    await instance.app.retention.onMaintenance({ active: true, action: 'restore_database', task: 'restore', progress: 0, log: [], error: null, backup: restored });
    await instance.app.retention.onMaintenance({ active: false, action: 'restore_database', task: 'done', progress: 1, log: [], error: null, backup: restored, finishedAt: new Date(now - 10 * DAY).toISOString() });
    await instance.app.systemConfig.update({ backup: { uploads: { keepDays: 30 } } });
    await instance.app.retention.run();
    const left = files();
    expect(left).not.toContain(stale);
    expect(left).toEqual(expect.arrayContaining([restored, fresh]));
    expect(lines).toContain(`Retention removed ${stale} (uploaded file not restored for more than 30 days)`);
    await instance.app.systemConfig.update({ backup: { uploads: { keepDays: 0 } } });
  });
});
