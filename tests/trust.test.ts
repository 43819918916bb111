import { closeSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ServiceError } from '../src/lib/server/errors';
import type { Lifeboat } from '../src/lib/server/app';
import { startInstance, withClient, type TestInstance } from './helpers/pg';
import { editDump, finished, seed, snapshot } from './restore-helpers';

const instances: TestInstance[] = [];
afterEach(async () => {
  for (const instance of instances.splice(0)) await instance.close();
});

async function seeded(assets = 200, options: { admin?: boolean } = {}) {
  const instance = await startInstance();
  instances.push(instance);
  const { app } = instance;
  await seed(app.db, { assets, admin: options.admin });
  await app.db.query("INSERT INTO albums (owner_id, album_name) SELECT id, 'Holidays' FROM users LIMIT 1");
  const { filename } = await app.backups.createBackup();
  return { instance, app, filename };
}

/** Rows of every table of the app's schema, as "public.table". */
async function tableRows(app: Lifeboat): Promise<Record<string, number>> {
  const { rows } = await app.db.query<{ name: string }>("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'");
  const counts: Record<string, number> = {};
  for (const { name } of rows) counts[`public.${name}`] = Number((await app.db.query(`SELECT count(*) AS n FROM public."${name}"`)).rows[0].n);
  return counts;
}

function flipMiddleByte(path: string): void {
  const at = Math.floor(statSync(path).size / 2);
  const fd = openSync(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, at);
    byte[0] ^= 0x5a;
    writeSync(fd, byte, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

async function scratchDatabases(database: string): Promise<string[]> {
  const { rows } = await withClient('postgres', (client) => client.query("SELECT datname FROM pg_database WHERE datname LIKE '%lifeboat_drill'"));
  return rows.map((row) => row.datname).filter((name: string) => name.startsWith(database));
}

describe('manifests and verification', () => {
  it('a fresh backup has a manifest whose SHA-256 and rows match, and verifies', async () => {
    const { app, filename } = await seeded();
    const manifest = await app.backups.manifests.read(filename);
    expect(manifest).not.toBeNull();
    const bytes = readFileSync(join(app.backups.backupsFolder, filename));
    const { createHash } = await import('node:crypto');
    expect(manifest!.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(manifest!.size).toBe(bytes.length);
    // igzip compressed it outside this process: the rows are counted by the verification that follows every backup.
    expect(manifest!.rowsPending).toBe(true);
    expect(manifest!.tables).toEqual({});

    const verification = await app.verification.verify(filename);
    expect(verification).toMatchObject({ status: 'verified', sha256: manifest!.sha256, error: null });
    const counted = await app.backups.manifests.read(filename);
    expect(counted!.rowsPending).toBe(false);
    expect(counted!.uncompressedSize).toBeGreaterThan(bytes.length);
    expect(counted!.tables).toEqual(await tableRows(app));
    expect(counted!.tables['public.assets']).toBe(200);
    const listed = (await app.backups.listBackups()).find((file) => file.filename === filename);
    expect(listed?.verification?.status).toBe('verified');
    expect(listed?.drill?.status).toBe('never');
    // The manifest is part of its backup, not a backup of its own.
    expect((await app.backups.listBackups()).map((file) => file.filename)).toEqual([filename]);
  });

  it('one flipped byte makes a backup corrupted, and its restore is refused with nothing changed', async () => {
    const { app, filename } = await seeded();
    const before = await snapshot(app.db);
    flipMiddleByte(join(app.backups.backupsFolder, filename));
    const verification = await app.verification.verify(filename);
    expect(verification.status).toBe('corrupted');
    expect(verification.error).toMatch(/SHA-256/);
    expect((await app.backups.listBackups())[0].verification).toMatchObject({ status: 'corrupted' });

    const refused = await app.restore.startRestore(filename, { by: 'test' }).catch((error) => error);
    expect(refused).toBeInstanceOf(ServiceError);
    expect(refused.status).toBe(409);
    expect(refused.message).toMatch(/cannot be restored: verification found it corrupted/);
    expect(app.maintenance.isActive()).toBe(false);
    expect(await snapshot(app.db)).toEqual(before);
  });

  it('a verified backup changed afterwards is not swapped in: the restore hashes what it loads, fails and changes nothing', async () => {
    const { app, filename, instance } = await seeded(50);
    expect((await app.verification.verify(filename)).status).toBe('verified');
    const before = await snapshot(app.db);
    // Rewritten with the same contents: still a good dump, but not the bytes its manifest describes.
    editDump(app, filename, filename, (sql) => sql.replace('-- PostgreSQL database dump\n', '-- PostgreSQL database dump (edited)\n'));
    await app.restore.startRestore(filename, { by: 'test' });
    const status = await finished(app);
    expect(status.task).toBe('error');
    expect(status.error).toMatch(/not the file its manifest describes/);
    await app.maintenance.end();
    expect(await snapshot(app.db)).toEqual(before);
    expect((await withClient('postgres', (client) => client.query("SELECT datname FROM pg_database WHERE datname LIKE $1", [`${instance.database}__lifeboat%`]))).rows).toEqual([]);
  });

  it('a file without a manifest gets one on its first verification; a cut-short one is corrupted', async () => {
    const { app, filename } = await seeded(30);
    const cut = 'uploaded-cut.sql.gz';
    editDump(app, filename, 'uploaded-hand-copied.sql.gz', (sql) => sql);
    editDump(app, filename, cut, (sql) => sql.slice(0, sql.lastIndexOf('-- PostgreSQL database dump complete')));
    expect(await app.backups.manifests.read('uploaded-hand-copied.sql.gz')).toBeNull();
    expect((await app.verification.verify('uploaded-hand-copied.sql.gz')).status).toBe('verified');
    const made = await app.backups.manifests.read('uploaded-hand-copied.sql.gz');
    expect(made).toMatchObject({ source: 'verification', tables: (await app.backups.manifests.read(filename))!.tables });
    const result = await app.verification.verify(cut);
    expect(result.status).toBe('corrupted');
    expect(result.error).toMatch(/dump complete/);
  });

  it('deleting a backup deletes its manifest', async () => {
    const { app, filename } = await seeded(10);
    const manifest = app.backups.manifests.path(filename);
    expect(statSync(manifest).isFile()).toBe(true);
    await app.backups.deleteBackups([filename]);
    expect(() => statSync(manifest)).toThrow();
  });
});

describe('restore drills', () => {
  it('a drill of a good backup passes, keeps the app online and leaves no scratch database', async () => {
    const { app, filename, instance } = await seeded();
    const { done } = await app.drills.start(filename);
    // While it runs, the live database answers and the app is not in maintenance mode.
    let answered = 0;
    let running = true;
    void done.finally(() => (running = false));
    while (running) {
      expect(app.maintenance.isActive()).toBe(false);
      await app.db.query('SELECT count(*) FROM assets');
      answered++;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const drill = await done;
    expect(drill).toMatchObject({ status: 'passed', error: null });
    expect(answered).toBeGreaterThan(0);
    expect(await scratchDatabases(instance.database)).toEqual([]);
    const listed = (await app.backups.listBackups()).find((file) => file.filename === filename);
    expect(listed?.drill).toMatchObject({ status: 'passed' });
    expect(listed?.drill?.durationMs).toBeGreaterThan(0);
    const queue = (await app.jobs.getStatuses()).find((status) => status.name === 'restore-drill');
    expect(queue).toMatchObject({ completed: 1, failed: 0, lastRun: { result: 'success', filename } });
  });

  it('a drill of a backup without an admin fails with the reason', async () => {
    const { app, filename: name, instance } = await seeded(20, { admin: false });
    const { done } = await app.drills.start(name);
    const drill = await done;
    expect(drill.status).toBe('failed');
    expect(drill.error).toMatch(/no admin user/);
    expect(drill.log?.join('\n')).toMatch(/no admin user/);
    expect(await scratchDatabases(instance.database)).toEqual([]);
  });

  it('a drill of a backup with a newer schema fails with the reason', async () => {
    const { app, filename } = await seeded(20);
    const name = editDump(app, filename, 'uploaded-newer.sql.gz', (sql) =>
      sql.replace(/(COPY public\.migrations [^\n]*\n)/, '$19999999999999-FromTheFuture\t9.9.9\t2030-01-01 00:00:00+00\n'),
    );
    const drill = await (await app.drills.start(name)).done;
    expect(drill.status).toBe('failed');
    expect(drill.error).toMatch(/newer version/);
  });

  it('a backup cancels a running drill, and a second drill is refused while one runs', async () => {
    const { app, filename, instance } = await seeded(2000);
    const { done } = await app.drills.start(filename);
    await expect(app.drills.start(filename)).rejects.toMatchObject({ status: 409 });
    await expect(app.jobs.create('backup-database').then((job) => job.done)).resolves.toMatchObject({ result: 'success' });
    const drill = await done;
    expect(drill.status).toBe('failed');
    expect(drill.error).toMatch(/Cancelled/);
    expect(await scratchDatabases(instance.database)).toEqual([]);
  });

  it('a restore started while a drill runs cancels it (scratch database dropped) and goes ahead', async () => {
    const { app, filename, instance } = await seeded(2000);
    const { done } = await app.drills.start(filename);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await app.restore.startRestore(filename, { by: 'test' });
    const drill = await done;
    expect(drill.status).toBe('failed');
    expect(drill.error).toMatch(/Cancelled: a restore or backup needs the database/);
    const status = await finished(app);
    expect(status.task).toBe('done');
    await app.restore.idle();
    expect(await scratchDatabases(instance.database)).toEqual([]);
  });

  it('a scratch database left by a killed drill is dropped at the next start, unless another process holds the lock', async () => {
    const { app, instance } = await seeded(5);
    await withClient('postgres', (client) => client.query(`CREATE DATABASE "${app.drills.scratchDatabase}"`));
    // Another process (the web server) holds the operation lock: its drill is left alone.
    const release = app.lock.acquire('drill');
    await app.drills.removeLeftover();
    expect(await scratchDatabases(instance.database)).toEqual([app.drills.scratchDatabase]);
    release();
    await app.drills.removeLeftover();
    expect(await scratchDatabases(instance.database)).toEqual([]);
  });

  it('a drill compares rows with the manifest', async () => {
    const { app, filename } = await seeded(20);
    await app.verification.verify(filename);
    await app.backups.manifests.update(filename, (m) => ({ ...m, tables: { ...m.tables, 'public.assets': 21 } }));
    const drill = await (await app.drills.start(filename)).done;
    expect(drill.status).toBe('failed');
    expect(drill.error).toMatch(/public\.assets has 20 instead of 21/);
  });
});

