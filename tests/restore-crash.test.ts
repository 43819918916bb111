import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Lifeboat } from '../src/lib/server/app';
import { loadConfig } from '../src/lib/server/config';
import { migrate, schemaState } from '../src/lib/server/db/migrator';
import { stagingNames } from '../src/lib/server/restore/staged-database';
import { createDatabase, dropDatabase, testCluster, withClient } from './helpers/pg';
import { changeData, pgTool, seed, snapshot } from './restore-helpers';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function readState(file: string): { status: { task: string }; pid: number } | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

/** psql processes restoring into this database (found by their arguments). */
function psqlProcesses(database: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args[0].endsWith('/psql') && (args.includes(database) || args.includes(stagingNames(database).staged))) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

describe('a restore killed with SIGKILL during the restore step', () => {
  const uploadLocation = mkdtempSync(join(tmpdir(), 'lifeboat-crash-'));
  let database = '';
  afterAll(async () => {
    if (database) await dropDatabase(database);
    rmSync(uploadLocation, { recursive: true, force: true });
  });

  it('leaves the database intact (old or new, never a mix) and the maintenance state visible after a restart', async () => {
    database = await createDatabase('crash');
    const { host, port, user } = testCluster();
    // Two connections: killed during the parallel load (one connection is the default on two cores).
    const env = { UPLOAD_LOCATION: uploadLocation, DB_HOSTNAME: host, DB_PORT: String(port), DB_USERNAME: user, DB_DATABASE_NAME: database, RESTORE_JOBS: '2' };
    const start = () => Lifeboat.start(loadConfig(env), { log: () => undefined });

    let app = await start();
    await seed(app.db, { assets: 150_000 });
    const { filename } = await app.backups.createBackup();
    const backupState = await snapshot(app.db);
    await changeData(app.db);
    const oldState = await snapshot(app.db);
    await app.shutdown();

    // The command line as a user runs it, but as one node process, so SIGKILL hits the restore itself.
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'restore', filename, '--yes'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', (_code, signal) => resolve(signal === 'SIGKILL' ? -9 : _code)));

    const stateFile = join(uploadLocation, '.lifeboat', 'maintenance.json');
    // Kill while psql takes in the dump (staged: into the new database beside the live one).
    const loading = () =>
      withClient('postgres', async (client) => {
        const { rows } = await client.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'lifeboat-restore' AND state = 'active'");
        return rows[0].n > 0;
      });
    let state = readState(stateFile);
    const deadline = Date.now() + 120_000;
    while (!(state?.status.task === 'restore' && (await loading())) && Date.now() < deadline && child.exitCode === null) {
      await sleep(20);
      state = readState(stateFile);
    }
    expect(state?.status.task, output).toBe('restore');
    expect(state!.pid).toBe(child.pid);
    process.kill(state!.pid, 'SIGKILL');
    expect(await exited).toBe(-9);
    expect(output).not.toContain('Restore complete');

    // psql sees its input end without COMMIT: it exits and PostgreSQL rolls the transaction back.
    for (let i = 0; i < 150 && psqlProcesses(database).length; i++) await sleep(100);
    const survivors = psqlProcesses(database);
    for (const pid of survivors) process.kill(pid, 'SIGKILL');
    expect(survivors).toEqual([]);

    app = await start();
    try {
      expect(app.maintenance.status).toMatchObject({ active: true, task: 'error', backup: filename });
      expect(app.maintenance.status.error).toMatch(/interrupted during the "restore" step/);
      // Staged: no restore-point file was needed, the live database was never touched.
      expect(app.maintenance.status.restorePoint ?? null).toBeNull();
      const now = await snapshot(app.db);
      expect([oldState, backupState]).toContainEqual(now);
      expect(now).toEqual(oldState);
      const schema = await app.db.withClient((client) => schemaState(client));
      expect(schema.pending).toEqual([]);

      // The restore was staged: the half-filled database beside the live one is still there,
      // and the next restore removes it first.
      const beside = () =>
        withClient('postgres', async (client) => (await client.query('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${database}__lifeboat`])).rows.map((row) => row.datname));
      expect(await beside()).toEqual([stagingNames(database).staged]);
      const again = await app.restore.restore(await app.restore.validate(filename), { by: 'the test' });
      expect(again.error).toBeNull();
      expect(await snapshot(app.db)).toEqual(backupState);
      await app.restore.idle();
      expect(await beside()).toEqual([]);
    } finally {
      await app.shutdown();
    }
  });
});

describe('a restore killed with SIGKILL right after the swap', () => {
  const uploadLocation = mkdtempSync(join(tmpdir(), 'lifeboat-crash-swap-'));
  let database = '';
  afterAll(async () => {
    if (database) await dropDatabase(database);
    rmSync(uploadLocation, { recursive: true, force: true });
  });

  it('comes back with the old data reachable: the replaced database is saved as a restore-point file at the next start, and that file restores it', async () => {
    database = await createDatabase('crashswap');
    const { host, port, user } = testCluster();
    const env = { UPLOAD_LOCATION: uploadLocation, DB_HOSTNAME: host, DB_PORT: String(port), DB_USERNAME: user, DB_DATABASE_NAME: database };
    const start = () => Lifeboat.start(loadConfig(env), { log: () => undefined });

    let app = await start();
    await seed(app.db, { assets: 20_000 });
    const { filename } = await app.backups.createBackup();
    const backupState = await snapshot(app.db);
    await changeData(app.db);
    const oldState = await snapshot(app.db);
    await app.shutdown();

    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'restore', filename, '--yes'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', (_code, signal) => resolve(signal === 'SIGKILL' ? -9 : _code)));
    // The moment the old database carries its kept-aside name, the process dies.
    const replaced = stagingNames(database).replaced;
    const swapped = () => withClient('postgres', async (client) => (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [replaced])).rowCount === 1);
    const deadline = Date.now() + 120_000;
    while (!(await swapped()) && Date.now() < deadline && child.exitCode === null) await sleep(10);
    expect(await swapped(), output).toBe(true);
    child.kill('SIGKILL');
    await exited;

    app = await start();
    try {
      // Saved in the background at start, then dropped; the live database holds the backup.
      await app.restore.idle();
      const points = readdirSync(app.backups.backupsFolder).filter((name) => name.startsWith('restore-point-') && !name.endsWith('.manifest.json'));
      expect(points, output).toHaveLength(1);
      const beside = await withClient('postgres', async (client) => (await client.query('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${database}__lifeboat`])).rows);
      expect(beside).toEqual([]);
      if (app.maintenance.isActive()) await app.restore.endMaintenance('the test').catch(() => undefined);
      expect(await snapshot(app.db)).toEqual(backupState);
      const back = await app.restore.restore(await app.restore.validate(points[0]), { by: 'the test' });
      expect(back.error).toBeNull();
      expect(await snapshot(app.db)).toEqual(oldState);
    } finally {
      await app.shutdown();
    }
  });
});

describe('the process feeding psql dies at a statement boundary', () => {
  const folder = mkdtempSync(join(tmpdir(), 'lifeboat-fifo-'));
  let database = '';
  afterAll(async () => {
    if (database) await dropDatabase(database);
    rmSync(folder, { recursive: true, force: true });
  });

  // psql --single-transaction would COMMIT here (its input simply ended); Lifeboat's COMMIT
  // comes only after a complete dump, so psql exits and PostgreSQL rolls everything back.
  it('commits nothing: the schema reset and the statements already run are rolled back', async () => {
    database = await createDatabase('fifo');
    await withClient(database, async (client) => {
      await migrate(client);
      await seed(client);
    });
    const before = await withClient(database, (client) => snapshot(client));
    const fifo = join(folder, 'dump.sql');
    execFileSync('mkfifo', [fifo]);
    const { host, port, user } = testCluster();
    const child = spawn(process.execPath, ['--import', 'tsx', 'tests/restore-crash-child.ts', pgTool('psql'), host, String(port), user, database, fifo], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));

    const writer = createWriteStream(fifo);
    writer.write('--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE public.half (a integer);\nCOPY public.half (a) FROM stdin;\n1\n2\n\\.\n\n');
    // Wait until psql ran all of it and waits for more, its transaction open.
    await withClient(database, async (client) => {
      for (let i = 0; i < 300; i++) {
        const { rows } = await client.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'lifeboat-restore' AND state = 'idle in transaction'");
        if (rows[0].n > 0) return;
        await sleep(50);
      }
      throw new Error(`psql never went idle in its transaction: ${output}`);
    });
    child.kill('SIGKILL');
    await exited;
    writer.destroy();
    for (let i = 0; i < 100 && psqlProcesses(database).length; i++) await sleep(100);
    expect(psqlProcesses(database)).toEqual([]);

    await withClient(database, async (client) => {
      expect(await snapshot(client)).toEqual(before);
      const { rows } = await client.query("SELECT to_regclass('public.half') AS half");
      expect(rows[0].half).toBeNull();
    });
    expect(output).not.toContain('loadDump returned');
  });
});
