import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Lifeboat } from '../src/lib/server/app';
import { setInstance } from '../src/lib/server/instance';
import type { ConsistencyReport } from '../src/lib/shared/types';
import { GET as csvGET } from '../src/routes/api/admin/maintenance/consistency/csv/+server';
import { GET as reportGET, POST as reportPOST } from '../src/routes/api/admin/maintenance/consistency/+server';
import { seedLibrary } from './helpers/backup-seed';
import { startInstance, type TestInstance } from './helpers/pg';

const instances: TestInstance[] = [];
afterEach(async () => {
  for (const instance of instances.splice(0)) await instance.close();
});

const admin = { user: { id: 'a', email: 'admin@example.com', name: 'A', isAdmin: true }, maintenanceAdmin: false };
const nonAdmin = { user: { id: 'u', email: 'user@example.com', name: 'U', isAdmin: false }, maintenanceAdmin: false };

async function started() {
  const instance = await startInstance();
  instances.push(instance);
  setInstance(instance.app);
  await instance.app.db.withClient((client) => seedLibrary(client as never, { users: 2, assetsPerUser: 10 }));
  return instance;
}

function place(instance: TestInstance, relativePath: string, content = 'x'): void {
  const path = join(instance.uploadLocation, relativePath);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

async function referencedPaths(app: Lifeboat): Promise<string[]> {
  const { rows } = await app.db.query<{ p: string }>(
    `SELECT DISTINCT p FROM assets, unnest(ARRAY[original_path, thumbnail_path, preview_path, encoded_video_path]) p WHERE p IS NOT NULL ORDER BY p`,
  );
  return rows.map((row) => row.p);
}

/** Every file under UPLOAD_LOCATION but the app's own state, with size and modification time. */
function diskState(root: string): Record<string, string> {
  const state: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (path !== '.lifeboat') walk(path);
      } else {
        const info = statSync(join(root, path));
        state[path] = `${info.size}:${info.mtimeMs}`;
      }
    }
  };
  walk('');
  return state;
}

async function callRoute(handler: (event: never) => Promise<Response>, locals: unknown): Promise<Response> {
  try {
    return await handler({ locals } as never);
  } catch (thrown) {
    const status = (thrown as { status?: number }).status;
    if (typeof status === 'number') return new Response(null, { status });
    throw thrown;
  }
}

describe('files-vs-database report', () => {
  it('after restoring a backup whose assets have no files on disk, counts them all as missing', async () => {
    const { app } = await started();
    const paths = await referencedPaths(app);
    expect(paths.length).toBe(40);
    const { filename } = await app.backups.createBackup();
    expect(await app.consistency.last()).toBeNull();

    const status = await app.restore.restore(await app.restore.validate(filename), { by: 'the test' });
    expect(status.task).toBe('done');

    // The report runs on its own once the restore has ended.
    const report = await vi.waitFor(
      async () => {
        const last = await app.consistency.last();
        if (!last) throw new Error('no report yet');
        return last;
      },
      { timeout: 60_000, interval: 100 },
    );
    expect(report).toMatchObject({ trigger: 'restore', backup: filename, referenced: 40, onDisk: 0 });
    expect(report.missing.count).toBe(40);
    expect(report.missing.first).toEqual(paths);
    expect(report.untracked).toEqual({ count: 0, first: [] });
  });

  it('finds untracked files, lists the first 100 of each, writes a CSV of all, and changes nothing on disk', async () => {
    const instance = await started();
    const { app } = instance;
    const paths = await referencedPaths(app);
    for (const path of paths.slice(0, 15)) place(instance, path);
    const strays = Array.from({ length: 120 }, (_, i) => `upload/stray/${String(i).padStart(3, '0')}, "odd".jpg`);
    for (const path of strays) place(instance, path);
    // Not library files: markers, backups, the app's state.
    place(instance, 'backups/hand-copied.sql.gz');
    place(instance, '.lifeboat/something.json');
    const before = diskState(instance.uploadLocation);

    const report = await app.consistency.run();

    expect(diskState(instance.uploadLocation)).toEqual(before);
    expect(report).toMatchObject({ trigger: 'manual', referenced: 40, onDisk: 135 });
    expect(report.missing.count).toBe(25);
    expect(report.missing.first).toEqual(paths.slice(15));
    expect(report.untracked.count).toBe(120);
    expect(report.untracked.first).toEqual(strays.slice(0, 100));
    // It outlives a restart: read back from .lifeboat/.
    expect(await app.consistency.last()).toEqual(report);

    const csv = readFileSync(app.consistency.csvPath, 'utf8').trim().split('\n');
    expect(csv[0]).toBe('status,path');
    expect(csv.length).toBe(1 + 25 + 120);
    expect(csv).toContain(`untracked,"upload/stray/119, ""odd"".jpg"`);
    expect(csv).toContain(`missing,${paths[39]}`);
  });

  it('the API: admin only; GET answers the last report (null before the first), POST runs it, the CSV downloads', async () => {
    const instance = await started();
    expect(await (await callRoute(reportGET as never, admin)).json()).toEqual({ report: null });
    expect((await callRoute(csvGET as never, admin)).status).toBe(404);
    for (const handler of [reportGET, reportPOST, csvGET]) {
      expect((await callRoute(handler as never, nonAdmin)).status).toBe(403);
      expect((await callRoute(handler as never, { user: null, maintenanceAdmin: false })).status).toBe(401);
    }
    place(instance, 'upload/stray.jpg');
    const posted = (await (await callRoute(reportPOST as never, admin)).json()) as { report: ConsistencyReport };
    expect(posted.report).toMatchObject({ missing: { count: 40 }, untracked: { count: 1, first: ['upload/stray.jpg'] } });
    expect(await (await callRoute(reportGET as never, admin)).json()).toEqual(posted);
    const csv = await callRoute(csvGET as never, admin);
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    expect((await csv.text()).split('\n')).toContain('untracked,upload/stray.jpg');
  });
});
