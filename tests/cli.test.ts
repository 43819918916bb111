import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lifeboat } from '../src/lib/server/app';
import { loadConfig } from '../src/lib/server/config';
import { changeData, seed, snapshot } from './restore-helpers';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `npm run cli -- ...` as a user runs it: tsx, a real process, the instance's environment. */
function cli(args: string[], env: Record<string, string>): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['tsx', 'src/cli/main.ts', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('command line on a stopped instance (embedded PostgreSQL, no web server)', () => {
  let root: string;
  let env: Record<string, string>;
  let backup: string;
  let before: Awaited<ReturnType<typeof snapshot>>;
  let changed: Awaited<ReturnType<typeof snapshot>>;

  const start = () => Lifeboat.start(loadConfig(env), { fsync: false, log: () => undefined });

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'lifeboat-cli-'));
    chmodSync(root, 0o755);
    env = { UPLOAD_LOCATION: join(root, 'library'), DB_DATA_LOCATION: join(root, 'postgres') };
    const app = await start();
    try {
      await seed(app.db);
      backup = (await app.backups.createBackup()).filename;
      before = await snapshot(app.db);
      await changeData(app.db);
      changed = await snapshot(app.db);
    } finally {
      await app.shutdown();
    }
    expect(existsSync(join(env.DB_DATA_LOCATION, 'postmaster.pid'))).toBe(false);
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('restores a backup: staged (the old database kept as the restore point, then saved as a file), migrations, health check; the cluster is stopped again', async () => {
    const result = await cli(['restore', backup, '--yes'], env);

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    for (const line of [`Restoring ${backup}`, 'is kept as', 'Running database migrations', 'Health check passed', 'Restore complete.', 'Restore point: restore-point-']) {
      expect(result.stdout).toContain(line);
    }
    expect(existsSync(join(env.DB_DATA_LOCATION, 'postmaster.pid'))).toBe(false);

    const app = await start();
    try {
      expect(await snapshot(app.db)).toEqual(before);
      expect(app.maintenance.status).toMatchObject({ active: false, task: 'done' });
      const restorePoint = readdirSync(app.backups.backupsFolder).find((name) => name.startsWith('restore-point-'));
      expect(restorePoint).toBeDefined();
      // The restore point holds the state before the restore.
      const back = await cli(['restore', restorePoint!, '--yes'], env);
      expect(back.code).toBe(0);
    } finally {
      await app.shutdown();
    }
    const app2 = await start();
    try {
      expect(await snapshot(app2.db)).toEqual(changed);
    } finally {
      await app2.shutdown();
    }
  });

  it('refuses to restore without --yes when nobody can confirm, and changes nothing', async () => {
    const result = await cli(['restore', backup], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Refusing to restore without --yes');
  });

  it('fails with exit code 1 on a file that is not a dump', async () => {
    const result = await cli(['restore', '/etc/hostname', '--yes'], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/does not look like a PostgreSQL dump/);
  });

  it('backs up, lists, and ends maintenance mode', async () => {
    const made = await cli(['backup'], env);
    expect(made.code).toBe(0);
    const name = /Backup (immich-db-backup-\S+\.sql\.gz) written/.exec(made.stdout)?.[1];
    expect(name).toBeDefined();

    // Read back and verified before the command ends.
    expect(made.stdout).toContain('Verified: read back, its SHA-256 matches the manifest.');
    const list = await cli(['list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(name);
    expect(list.stdout).toMatch(new RegExp(`verified\\s+-\\s+${name!.replace(/\./g, '\\.')}`));
    expect(list.stdout).toMatch(/restore-point\s+1\.1\.0 \(this version\)/);

    const app = await start();
    await app.maintenance.start('start', 'test');
    await app.shutdown();
    const end = await cli(['maintenance', 'end'], env);
    expect(end.stdout).toContain('Maintenance mode ended.');
    expect(end.code).toBe(0);
  });

  it('verifies every backup and test-restores one; a corrupted backup fails verification with exit code 1', async () => {
    const verified = await cli(['verify', '--all'], env);
    expect(verified.stdout).toMatch(/^verified {3}/m);
    expect(verified.code).toBe(0);
    const drill = await cli(['drill', backup], env);
    expect(drill.stdout).toMatch(/Restore drill passed/);
    expect(drill.code).toBe(0);
    const copy = join(env.UPLOAD_LOCATION, 'backups', 'uploaded-cut.sql.gz');
    writeFileSync(copy, readFileSync(join(env.UPLOAD_LOCATION, 'backups', backup)).subarray(0, 2000));
    const cut = await cli(['verify', 'uploaded-cut.sql.gz'], env);
    expect(cut.stdout).toMatch(/CORRUPTED {2}uploaded-cut\.sql\.gz: The backup is corrupted/);
    expect(cut.code).toBe(1);
    rmSync(copy);
    rmSync(`${copy}.manifest.json`);
  });

  it('prints help for each command', async () => {
    for (const command of ['backup', 'list', 'restore', 'maintenance', 'verify', 'drill']) {
      const result = await cli([command, '--help'], env);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^Usage: npm run cli -- ${command}`));
    }
    expect((await cli(['nonsense'], env)).code).toBe(2);
  });
});
