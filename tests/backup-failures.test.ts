import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { Lifeboat } from '../src/lib/server/app';
import { loadConfig } from '../src/lib/server/config';
import { findPgBinDir } from '../src/lib/server/db/pg-binaries';
import { seedLibrary } from './helpers/backup-seed';
import { startInstance, type TestInstance } from './helpers/pg';

const run = promisify(execFile);
const leftovers = (folder: string) => readdirSync(folder).filter((name) => name !== '.immich');

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the database server stops in the middle of a dump', () => {
  // Its own cluster: stopping the shared one would break every other test.
  const root = mkdtempSync(join(tmpdir(), 'lifeboat-pgstop-'));
  chmodSync(root, 0o755);
  let app: Lifeboat | null = null;
  afterAll(async () => {
    await app?.shutdown().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  it('leaves no file and records the error with pg_dump stderr', async () => {
    const uploadLocation = join(root, 'library');
    mkdirSync(uploadLocation);
    app = await Lifeboat.start(loadConfig({ UPLOAD_LOCATION: uploadLocation, DB_DATA_LOCATION: join(root, 'postgres') }), { fsync: false, log: () => undefined });
    await app.db.withClient((client) => seedLibrary(client));
    const cluster = app.db.cluster!;

    // Another session holds an exclusive lock, so pg_dump is certainly mid-dump (connected, waiting) when the server goes.
    const holder = new pg.Client(app.db.connection);
    holder.on('error', () => undefined);
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE assets IN ACCESS EXCLUSIVE MODE');
    const job = await app.jobs.create('backup-database');
    await until(async () => {
      // From another session: pg_stat_activity is fixed for the length of a transaction.
      const { rowCount } = await app!.db.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'`);
      return (rowCount ?? 0) > 0;
    }, 'pg_dump to wait for the lock');
    expect(leftovers(app.backups.backupsFolder)).toHaveLength(1); // the .tmp being written

    const { dir } = await findPgBinDir(['pg_ctl']);
    await run(join(dir, 'pg_ctl'), ['-D', cluster.dataDir, '-m', 'immediate', 'stop'], { uid: 101, gid: 104 } as never).catch(async () => {
      // Not root: the cluster belongs to this user.
      await run(join(dir, 'pg_ctl'), ['-D', cluster.dataDir, '-m', 'immediate', 'stop']);
    });
    await holder.end().catch(() => undefined);

    const result = await job.done;
    expect(result.result).toBe('failed');
    expect(result.error).toMatch(/pg_dump exited with code 1: pg_dump: error: .*(server closed the connection|terminating connection|connection to server)/s);
    expect(leftovers(app.backups.backupsFolder)).toEqual([]);
    const [queue] = await app.jobs.getStatuses();
    expect(queue).toMatchObject({ active: 0, failed: 1, completed: 0, lastRun: result });
  });
});

describe('the disk fills up during a backup', () => {
  let instance: TestInstance;
  let mounted = '';
  afterAll(async () => {
    if (mounted) await run('umount', [mounted]).catch(() => undefined);
    await instance?.close();
  });

  it('leaves no partial file and records the error', async () => {
    instance = await startInstance();
    // A 256 KiB filesystem as the backups folder, and ~2 MB of incompressible data to dump.
    mounted = instance.app.backups.backupsFolder;
    await run('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mounted]);
    await instance.app.db.query('CREATE TABLE filler AS SELECT gen_random_bytes(1024) AS data FROM generate_series(1, 2048)');

    const result = await (await instance.app.jobs.create('backup-database')).done;
    expect(result.result).toBe('failed');
    expect(result.error).toMatch(/Not enough disk space in .*backups.*ENOSPC/);
    expect(readdirSync(mounted)).toEqual([]);
    const [queue] = await instance.app.jobs.getStatuses();
    expect(queue).toMatchObject({ failed: 1, lastRun: result });
    // The lock is free again: the next backup can run once there is room.
    expect(instance.app.lock.current).toBeNull();
  });
});

describe('a backup cancelled as it starts', () => {
  let instance: TestInstance;
  afterAll(async () => {
    await instance?.close();
  });

  it('rejects with the cancellation, leaves no file, and leaves no rejection unhandled (vitest fails the run on one)', async () => {
    instance = await startInstance();
    const { app } = instance;
    for (const when of ['before', 'at once'] as const) {
      const controller = new AbortController();
      if (when === 'before') controller.abort(new Error('cancelled before it started'));
      const backup = app.backups.createBackup({ signal: controller.signal });
      if (when === 'at once') controller.abort(new Error('cancelled at once'));
      await expect(backup).rejects.toThrow(/cancelled/);
      expect(leftovers(app.backups.backupsFolder).filter((name) => !name.endsWith('.manifest.json'))).toEqual([]);
    }
    // A backup after them still works.
    const { filename } = await app.backups.createBackup();
    expect(leftovers(app.backups.backupsFolder)).toContain(filename);
  });
});
