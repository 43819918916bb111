import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childEnv, connectionArgs } from '../src/lib/server/db/connection';
import { clientToolsFor } from '../src/lib/server/db/pg-binaries';
import { DEFAULT_GZIP_LEVEL } from '../src/lib/server/backup/parallel-gzip';
import { DumpRepository, pgDumpArgs } from '../src/lib/server/repositories/dump.repository';
import { StorageRepository } from '../src/lib/server/repositories/storage.repository';
import { DatabaseBackupService } from '../src/lib/server/services/database-backup.service';
import { findIgzip } from '../src/lib/server/process/igzip';
import { ServiceError } from '../src/lib/server/errors';
import { routineBackupName } from '../src/lib/shared/backup-name';
import { rowCounts, seedLibrary } from './helpers/backup-seed';
import { createDatabase, connectionFor, dropDatabase, startInstance, withClient, type TestInstance } from './helpers/pg';

const run = promisify(execFile);
const NAME_FORMAT = /^immich-db-backup-\d{8}T\d{6}-v1\.1\.0-pg\d+\.\d+\.sql\.gz$/;

let instance: TestInstance;
beforeAll(async () => {
  instance = await startInstance();
  await instance.app.db.withClient((client) => seedLibrary(client));
});
afterAll(async () => {
  await instance?.close();
});

/** gunzip -c file | psql, as an admin would restore by hand. */
async function restoreWithPsql(file: string, database: string): Promise<void> {
  const { psql } = await clientToolsFor(await instance.app.db.serverVersion());
  const gunzip = spawn('gunzip', ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const client = spawn(psql, [...connectionArgs(connectionFor(database)), '-v', 'ON_ERROR_STOP=1', '--quiet'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  client.stderr.on('data', (chunk) => (stderr += chunk));
  gunzip.stdout.pipe(client.stdin);
  const [gzipCode, psqlCode] = await Promise.all([new Promise((r) => gunzip.on('close', r)), new Promise((r) => client.on('close', r))]);
  expect({ gzipCode, psqlCode, stderr }).toEqual({ gzipCode: 0, psqlCode: 0, stderr: '' });
}

describe('createBackup (real pg_dump)', () => {
  it('never reuses the name of an existing backup, even within the same second', async () => {
    const [first, second, third] = [
      await instance.app.backups.createBackup({ kind: 'restore-point' }),
      await instance.app.backups.createBackup({ kind: 'restore-point' }),
      await instance.app.backups.createBackup({ kind: 'restore-point' }),
    ];
    expect(new Set([first.filename, second.filename, third.filename]).size).toBe(3);
    for (const { filename } of [first, second, third]) await run('gzip', ['-t', join(instance.app.backups.backupsFolder, filename)]);
    await instance.app.backups.deleteBackups([first.filename, second.filename, third.filename]);
  });

  it('writes a complete, named, ordinary gzip file that plain psql restores with identical row counts', async () => {
    const before = new Date();
    const progress: number[] = [];
    const { filename, filesize } = await instance.app.backups.createBackup({ onBytes: (bytes) => progress.push(bytes) });
    expect(filename).toMatch(NAME_FORMAT);
    const serverVersion = await instance.app.db.serverVersion();
    expect(filename).toContain(`-pg${serverVersion}.sql.gz`);
    // The timestamp in the name is UTC and the moment the backup started.
    const stamp = /(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})/.exec(filename)!.slice(1).map(Number);
    const named = Date.UTC(stamp[0], stamp[1] - 1, stamp[2], stamp[3], stamp[4], stamp[5]);
    expect(named).toBeGreaterThanOrEqual(Math.floor(before.getTime() / 1000) * 1000);
    expect(named).toBeLessThanOrEqual(Date.now());

    const path = join(instance.app.backups.backupsFolder, filename);
    await run('gzip', ['-t', path]);
    expect(progress.at(-1)).toBe(filesize);
    expect(readdirSync(instance.app.backups.backupsFolder).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    const head = (await run('bash', ['-c', `gunzip -c "${path}" | head -c 4096`])).stdout;
    expect(head).toMatch(/-- PostgreSQL database dump/);
    expect(head).toMatch(/DROP .* IF EXISTS|DROP TABLE IF EXISTS/s);

    const scratch = await createDatabase('restored');
    try {
      await restoreWithPsql(path, scratch);
      const original = await instance.app.db.withClient((client) => rowCounts(client));
      const restored = await withClient(scratch, (client) => rowCounts(client));
      expect(original.assets).toBeGreaterThan(100);
      expect(original.album_assets).toBeGreaterThan(0);
      expect(restored).toEqual(original);
    } finally {
      await dropDatabase(scratch);
    }
  });

  it('with the fast settings (level, members, parallelism) writes one ordinary gzip file: plain gunzip reads it, psql restores it', async () => {
    const { pgDump } = await clientToolsFor(await instance.app.db.serverVersion());
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-members-'));
    try {
      const path = join(dir, 'members.sql.gz');
      // Small members, so even the test library's dump is many of them, as a large database's is.
      const { dumpBytes, fileBytes } = await new DumpRepository().dumpToFile({ pgDump, connection: instance.app.db.connection, path, gzip: { chunkSize: 8 * 1024 } });
      const file = readFileSync(path);
      expect(file.length).toBe(fileBytes);
      // Every member starts with zlib's gzip header; byte 8 says "fastest" for level 1, nothing for 2-8.
      const header = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, DEFAULT_GZIP_LEVEL === 1 ? 4 : 0, 3]);
      let members = 0;
      for (let at = file.indexOf(header); at !== -1; at = file.indexOf(header, at + 1)) members++;
      expect(members).toBeGreaterThanOrEqual(Math.floor(dumpBytes! / (8 * 1024)));
      expect(members).toBeGreaterThan(3);
      await run('gunzip', ['-t', path]);
      const scratch = await createDatabase('members');
      try {
        await restoreWithPsql(path, scratch);
        const original = await instance.app.db.withClient((client) => rowCounts(client));
        expect(await withClient(scratch, (client) => rowCounts(client))).toEqual(original);
      } finally {
        await dropDatabase(scratch);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('compresses with igzip when it is installed (the default): one ordinary gzip member that plain gunzip reads and psql restores', async () => {
    const igzip = findIgzip('auto');
    // CI installs it (.ci/run); a machine without it backs up with zlib, as the test above shows.
    expect(igzip, 'igzip is not installed (Debian: apt-get install isal)').not.toBeNull();
    expect(instance.app.config.igzip).toBe(igzip);
    const { filename } = await instance.app.backups.createBackup();
    const path = join(instance.app.backups.backupsFolder, filename);
    try {
      const file = readFileSync(path);
      // igzip's member header (no name, no time) and no second member after it.
      expect([...file.subarray(0, 3)]).toEqual([0x1f, 0x8b, 0x08]);
      expect(file.indexOf(Buffer.from([0x1f, 0x8b, 0x08, 0]), 1)).toBe(-1);
      await run('gunzip', ['-t', path]);
      const scratch = await createDatabase('igzip');
      try {
        await restoreWithPsql(path, scratch);
        const original = await instance.app.db.withClient((client) => rowCounts(client));
        expect(await withClient(scratch, (client) => rowCounts(client))).toEqual(original);
      } finally {
        await dropDatabase(scratch);
      }
      // Its manifest's SHA-256 is of the bytes igzip wrote.
      const manifest = await instance.app.backups.manifests.read(filename);
      expect(manifest?.sha256).toBe(createHash('sha256').update(file).digest('hex'));
    } finally {
      await instance.app.backups.deleteBackups([filename]);
    }
  });

  it('fails a backup whose compressor fails, and leaves no file', async () => {
    const { pgDump } = await clientToolsFor(await instance.app.db.serverVersion());
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-bad-igzip-'));
    try {
      // Writes half a gzip header, then dies: its output ended, only its exit code tells.
      const broken = join(dir, 'igzip');
      writeFileSync(broken, `#!/bin/sh\nprintf '\\037\\213'\ncat > /dev/null\necho 'igzip: out of space' >&2\nexit 3\n`);
      chmodSync(broken, 0o755);
      const path = join(dir, 'out.sql.gz.tmp');
      const error = await new DumpRepository(broken).dumpToFile({ pgDump, connection: instance.app.db.connection, path }).catch((e) => e);
      expect(error).toBeInstanceOf(Error);
      expect(String(error.message)).toMatch(/igzip exited with code 3: igzip: out of space/);
      // The app's own backup with that compressor leaves no .tmp and no file.
      const app = instance.app;
      const before = readdirSync(app.backups.backupsFolder).sort();
      const failing = new DatabaseBackupService(app.config, app.db, new DumpRepository(broken), new StorageRepository(), app.backups.backupsFolder, app.fileUse);
      await expect(failing.createBackup()).rejects.toThrow(/igzip exited with code 3/);
      expect(readdirSync(app.backups.backupsFolder).sort()).toEqual(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('BACKUP_COMPRESSOR=zlib, or no igzip on the machine, compresses with zlib', () => {
    expect(findIgzip('zlib')).toBeNull();
    expect(findIgzip('auto', '/nonexistent')).toBe(existsSync('/usr/bin/igzip') ? '/usr/bin/igzip' : existsSync('/usr/local/bin/igzip') ? '/usr/local/bin/igzip' : null);
    expect(findIgzip('/opt/isal/bin/igzip')).toBe('/opt/isal/bin/igzip');
  });

  it('makes restore points with their prefix', async () => {
    const { filename } = await instance.app.backups.createBackup({ kind: 'restore-point' });
    expect(filename).toMatch(/^restore-point-immich-db-backup-\d{8}T\d{6}-v1\.1\.0-pg[\d.]+\.sql\.gz$/);
    await instance.app.backups.deleteBackups([filename]);
  });

  it('removes the .tmp and reports pg_dump stderr when pg_dump fails', async () => {
    const broken = await startInstance();
    try {
      // The database disappears under the app: pg_dump cannot connect.
      await broken.app.db.closePool();
      await dropDatabase(broken.database);
      const error = await broken.app.backups.createBackup().catch((e) => e);
      expect(error).toBeInstanceOf(Error);
      expect(String(error.message)).toMatch(/does not exist/);
      expect(readdirSync(broken.app.backups.backupsFolder).filter((name) => name !== '.immich')).toEqual([]);
    } finally {
      await broken.close();
    }
  });
});

describe('the child process gets the password only through its environment', () => {
  const connection = { host: '/run/pg', port: 5433, user: 'immich', password: 'S3cret-pa55', database: 'immich' };

  it('builds arguments without the password and an environment with nothing else', () => {
    const args = pgDumpArgs(connection);
    expect(args.join(' ')).not.toContain('S3cret');
    expect(args).toEqual(['--host', '/run/pg', '--port', '5433', '--username', 'immich', '--dbname', 'immich', '--clean', '--if-exists', '--no-password']);
    expect(Object.keys(childEnv(connection)).sort()).toEqual(['LC_ALL', 'PATH', 'PGPASSWORD']);
    expect(childEnv(connection).PGPASSWORD).toBe('S3cret-pa55');
    expect(Object.keys(childEnv({ ...connection, password: undefined })).sort()).toEqual(['LC_ALL', 'PATH']);
  });

  it('is what a real child sees (argv and environ of the spawned process)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-fake-pgdump-'));
    try {
      const fake = join(dir, 'pg_dump');
      writeFileSync(fake, `#!/bin/sh\nprintf '%s\\n' "$@" > '${dir}/args'\ntr '\\0' '\\n' < /proc/$$/environ > '${dir}/environ'\necho '-- PostgreSQL database dump'\n`);
      chmodSync(fake, 0o755);
      process.env.LIFEBOAT_TEST_SECRET_ENV = 'must-not-leak';
      await new DumpRepository().dumpToFile({ pgDump: fake, connection, path: join(dir, 'out.sql.gz.tmp') });
      const args = readFileSync(join(dir, 'args'), 'utf8');
      const environ = readFileSync(join(dir, 'environ'), 'utf8').trim().split('\n');
      expect(args).not.toContain('S3cret');
      expect(args).toContain('--clean\n--if-exists');
      expect(environ.map((line) => line.split('=')[0]).sort()).toEqual(['LC_ALL', 'PATH', 'PGPASSWORD']);
      expect(environ).toContain('PGPASSWORD=S3cret-pa55');
    } finally {
      delete process.env.LIFEBOAT_TEST_SECRET_ENV;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('backups listing, download and delete', () => {
  const folder = () => instance.app.backups.backupsFolder;
  const touch = (name: string, content = 'x') => writeFileSync(join(folder(), name), content);

  it('lists every kind newest first, with versions from the name, including the older epoch-millis style', async () => {
    const routine = routineBackupName(new Date('2030-01-02T03:04:05Z'), '1.0.0', '14.17');
    const legacy = 'immich-db-backup-1700000000000.sql.gz';
    const restorePoint = `restore-point-${routineBackupName(new Date('2030-01-01T00:00:00Z'), '1.1.0', '15.18')}`;
    const uploaded = 'uploaded-my-old-dump.sql';
    touch(routine);
    touch(legacy);
    touch(restorePoint);
    touch(uploaded);
    utimesSync(join(folder(), uploaded), new Date('2001-01-01'), new Date('2001-01-01'));
    touch('notes.txt');
    touch(`${routine}.tmp`);
    const { backups } = { backups: await instance.app.backups.listBackups() };
    const byName = Object.fromEntries(backups.map((b) => [b.filename, b]));
    expect(byName[routine]).toMatchObject({ kind: 'routine', version: '1.0.0', postgresVersion: '14.17', createdAt: '2030-01-02T03:04:05.000Z', filesize: 1 });
    expect(byName[legacy]).toMatchObject({ kind: 'routine', version: null, postgresVersion: null, createdAt: new Date(1700000000000).toISOString() });
    expect(byName[restorePoint]).toMatchObject({ kind: 'restore-point', version: '1.1.0' });
    expect(byName[uploaded]).toMatchObject({ kind: 'uploaded', version: null, createdAt: '2001-01-01T00:00:00.000Z' });
    expect(byName['notes.txt']).toBeUndefined();
    expect(byName[`${routine}.tmp`]).toBeUndefined();
    const dates = backups.map((b) => b.createdAt);
    expect(dates).toEqual([...dates].sort().reverse());
    expect(backups[0].filename).toBe(routine);
    expect(backups.at(-1)!.filename).toBe(uploaded);
    await instance.app.backups.deleteBackups([routine, legacy, restorePoint, uploaded]);
    rmSync(join(folder(), 'notes.txt'));
    rmSync(join(folder(), `${routine}.tmp`));
  });

  it('checks names before building a path: 400 for bad names, 404 for missing files', async () => {
    for (const bad of ['../x.sql', '..%2Fx.sql', 'x.txt', '.hidden.sql', 'a/b.sql.gz', '', 'x.sql.gz.tmp', 'x..sql', 42]) {
      const error = await instance.app.backups.backupPath(bad).catch((e) => e);
      expect(error, String(bad)).toBeInstanceOf(ServiceError);
      expect(error.status, String(bad)).toBe(400);
    }
    const missing = await instance.app.backups.backupPath('nothing-here.sql.gz').catch((e) => e);
    expect(missing.status).toBe(404);
  });

  it('streams a download of the file', async () => {
    touch('download-me.sql', 'SELECT 1;\n'.repeat(10_000));
    const { size, stream } = await instance.app.backups.openBackup('download-me.sql');
    const chunks: Buffer[] = [];
    for await (const chunk of Readable.from(stream)) chunks.push(chunk);
    expect(size).toBe(100_000);
    expect(Buffer.concat(chunks).toString()).toBe('SELECT 1;\n'.repeat(10_000));
    rmSync(join(folder(), 'download-me.sql'));
  });

  it('deletes all or nothing: a missing file is a 404 that names it, and the others stay', async () => {
    touch('keep-a.sql');
    touch('keep-b.sql.gz');
    const error = await instance.app.backups.deleteBackups(['keep-a.sql', 'gone-1.sql', 'keep-b.sql.gz', 'gone-2.sql.gz']).catch((e) => e);
    expect(error.status).toBe(404);
    expect(error.message).toContain('gone-1.sql');
    expect(error.message).toContain('gone-2.sql.gz');
    expect(readdirSync(folder())).toEqual(expect.arrayContaining(['keep-a.sql', 'keep-b.sql.gz']));
    expect((await instance.app.backups.deleteBackups(['keep-a.sql', 'x.txt']).catch((e) => e)).status).toBe(400);
    expect((await instance.app.backups.deleteBackups([]).catch((e) => e)).status).toBe(400);
    expect((await instance.app.backups.deleteBackups('keep-a.sql').catch((e) => e)).status).toBe(400);
    expect(await instance.app.backups.deleteBackups(['keep-a.sql', 'keep-b.sql.gz', 'keep-a.sql'])).toEqual({ deleted: ['keep-a.sql', 'keep-b.sql.gz'] });
    expect(readdirSync(folder())).not.toContain('keep-a.sql');
  });
});
