import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { stagingNames } from '../src/lib/server/restore/staged-database';
import { afterEach, describe, expect, it } from 'vitest';
import { migrate, schemaState } from '../src/lib/server/db/migrator';
import { ServiceError } from '../src/lib/server/errors';
import { ANONYMOUS_ERROR } from '../src/lib/server/services/maintenance.service';
import { APP_VERSION } from '../src/lib/server/version';
import { createDatabase, dropDatabase, startInstance, testCluster, withClient, type TestInstance } from './helpers/pg';
import { beforeEnd, changeData, editDump, finished, pgTool, seed, snapshot } from './restore-helpers';

const instances: TestInstance[] = [];
const roles: string[] = [];
afterEach(async () => {
  for (const instance of instances.splice(0)) await instance.close();
  for (const role of roles.splice(0)) await withClient('postgres', (client) => client.query(`DROP ROLE IF EXISTS ${role}`));
});

/** An instance with users and assets, and a backup of it. */
async function seeded(assets = 50) {
  const instance = await startInstance();
  instances.push(instance);
  const { app } = instance;
  await seed(app.db, { assets });
  const backup = await app.backups.createBackup();
  const before = await snapshot(app.db);
  return { instance, app, backup: backup.filename, before };
}

/**
 * The same, as a role that owns its database but is no superuser. Without CREATEDB (as on
 * many hosted servers) the restore cannot be staged, so it runs in place, in one transaction.
 */
async function seededAsOwner(options: { createDb: boolean }) {
  const suffix = randomBytes(4).toString('hex');
  const [role, database] = [`owner_${suffix}`, `app_${suffix}`];
  await withClient('postgres', async (client) => {
    await client.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER ${options.createDb ? 'CREATEDB' : 'NOCREATEDB'}`);
    await client.query(`CREATE DATABASE ${database} OWNER ${role}`);
  });
  roles.push(role);
  const instance = await startInstance({ database, env: { DB_USERNAME: role } });
  instances.push(instance);
  const { app } = instance;
  await seed(app.db);
  const backup = await app.backups.createBackup();
  return { app, backup: backup.filename, before: await snapshot(app.db) };
}

/** Databases a staged restore made beside the instance's and left behind. */
async function leftovers(database: string): Promise<string[]> {
  const { rows } = await withClient('postgres', (client) => client.query('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${database}__lifeboat`]));
  return rows.map((row) => row.datname);
}

/** A hand-edited dump: it commits before the assets' data, then fails near its end. */
function commitsHalfWay(app: TestInstance['app'], backup: string, name: string): void {
  editDump(app, backup, name, (sql) => {
    const copy = sql.indexOf('COPY public.assets');
    return beforeEnd(`${sql.slice(0, copy)}COMMIT;\n${sql.slice(copy)}`, 'INSERT INTO public.no_such_table VALUES (1);');
  });
}

async function restore(app: TestInstance['app'], name: string) {
  return app.restore.restore(await app.restore.validate(name), { by: 'the test' });
}

function expectRefused(promise: Promise<unknown>, status: number, message?: RegExp) {
  return expect(promise).rejects.toSatisfy((error: unknown) => {
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).status).toBe(status);
    if (message) expect((error as Error).message).toMatch(message);
    return true;
  });
}

describe('restore', () => {
  it('brings back the data of the backup, keeps the replaced database as the restore point, and leaves maintenance mode', async () => {
    const { app, backup, before } = await seeded();
    await changeData(app.db);
    expect(await snapshot(app.db)).not.toEqual(before);

    const status = await restore(app, backup);

    expect(status.error).toBeNull();
    expect(status).toMatchObject({ active: false, task: 'done', progress: 1, backup });
    expect(await snapshot(app.db)).toEqual(before);
    // Staged: no restore-point file first (less downtime); the replaced database is the restore point.
    expect(status.restorePoint ?? null).toBeNull();
    const log = status.log.join('\n');
    for (const step of ['Restoring into a new database', 'took the name', 'is kept as', 'Running database migrations', 'Health check passed', 'complete']) {
      expect(log).toContain(step);
    }
    expect(log).not.toContain('Creating a restore point');
    // Once the app is back, the replaced database is saved as a compressed restore-point file, then dropped.
    await app.restore.idle();
    const point = app.maintenance.status.restorePoint!;
    expect(point).toMatch(/^restore-point-immich-db-backup-\d{8}T\d{6}-v1\.1\.0-pg[\d.]+\.sql\.gz$/);
    expect(readdirSync(app.backups.backupsFolder)).toContain(point);
    execFileSync('gzip', ['-t', join(app.backups.backupsFolder, point)]);
    expect(app.maintenance.status.log.join('\n')).toMatch(/Restore point .* saved from the replaced database ".*", which was then dropped/);
    expect(await leftovers(app.db.connection.database)).toEqual([]);
    // The restore point holds the changed data: restoring it brings the change back (and restoring twice works).
    const again = await restore(app, point);
    expect(again.task).toBe('done');
    expect((await snapshot(app.db)).users).toContain('intruder@example.com');
  });

  it.each([
    ['a corrupted gzip', (gz: Buffer) => {
      const copy = Buffer.from(gz);
      for (let i = Math.floor(copy.length * 0.6); i < Math.floor(copy.length * 0.6) + 64; i++) copy[i] ^= 0x5a;
      return copy;
    }],
    ['a truncated file', (gz: Buffer) => gz.subarray(0, Math.floor(gz.length * 0.7))],
  ])('%s leaves the database unchanged and reports the error', async (_name, damage) => {
    const { app, backup } = await seeded(6000);
    await changeData(app.db);
    const current = await snapshot(app.db);
    const folder = app.backups.backupsFolder;
    writeFileSync(join(folder, 'uploaded-damaged.sql.gz'), damage(readFileSync(join(folder, backup))));

    const status = await restore(app, 'uploaded-damaged.sql.gz');

    expect(status).toMatchObject({ active: true, task: 'error' });
    expect(status.error).toMatch(/^Restore failed: .*(damaged|psql stopped)/);
    expect(status.error).toMatch(/The database was not changed|Rolled back to .*: OK/);
    expect(await snapshot(app.db)).toEqual(current);
  });

  it('an SQL error near the end of the dump leaves the database unchanged', async () => {
    const { app, backup } = await seeded();
    await changeData(app.db);
    const current = await snapshot(app.db);
    editDump(app, backup, 'uploaded-bad-statement.sql.gz', (sql) => beforeEnd(sql, 'INSERT INTO public.no_such_table VALUES (1);'));

    const status = await restore(app, 'uploaded-bad-statement.sql.gz');

    expect(status.task).toBe('error');
    expect(status.error).toMatch(/psql stopped on an error .*relation "public.no_such_table" does not exist/s);
    expect(status.error).toContain('The database was not changed');
    expect(await snapshot(app.db)).toEqual(current);
  });

  it('keeps a hand-edited dump that commits half way away from the live database, and drops what it made', async () => {
    const { app, backup } = await seeded();
    await changeData(app.db);
    const current = await snapshot(app.db);
    commitsHalfWay(app, backup, 'uploaded-commits.sql.gz');

    const status = await restore(app, 'uploaded-commits.sql.gz');

    expect(status.task).toBe('error');
    expect(status.error).toMatch(/no_such_table.*The database was not changed: the backup was being restored into a separate database, which was dropped/s);
    expect(await snapshot(app.db)).toEqual(current);
    expect(await leftovers(app.db.connection.database)).toEqual([]);
  });

  it('in place: stops with nothing changed when the restore point fails', async () => {
    const { app, backup } = await seededAsOwner({ createDb: false });
    await changeData(app.db);
    const current = await snapshot(app.db);
    // A restore point that cannot be written (say, a full disk: see backup-failures.test.ts for the real thing).
    const createBackup = app.backups.createBackup.bind(app.backups);
    app.backups.createBackup = async (options) => {
      if (options?.kind === 'restore-point') throw new Error('No space left on device');
      return createBackup(options);
    };

    const status = await restore(app, backup);

    expect(status.task).toBe('error');
    expect(status.active).toBe(false);
    expect(status.error).toMatch(/^Restore not started: the restore point could not be created: No space left on device\. Nothing was changed\.$/);
    expect(await snapshot(app.db)).toEqual(current);
    expect(await leftovers(app.db.connection.database)).toEqual([]);
  });

  it('staged: when the replaced database cannot be saved as a file, it is kept, and a new restore that would drop it is refused', async () => {
    const { app, backup, before } = await seeded(600);
    await changeData(app.db);
    const changed = await snapshot(app.db);
    const createBackup = app.backups.createBackup.bind(app.backups);
    app.backups.createBackup = async (options) => {
      if (options?.kind === 'restore-point') throw new Error('No space left on device');
      return createBackup(options);
    };

    const status = await restore(app, backup);
    expect(status.error).toBeNull();
    expect(await snapshot(app.db)).toEqual(before);
    await app.restore.idle();
    const replaced = stagingNames(app.db.connection.database).replaced;
    expect(await leftovers(app.db.connection.database)).toEqual([replaced]);
    expect(app.maintenance.status.log.join('\n')).toMatch(/Could not save the replaced database .*No space left on device.*it is kept/);

    const refused = await app.restore.startRestore(backup, { by: 'the test' }).catch((error) => error);
    expect(refused.status).toBe(409);
    expect(refused.message).toContain(`"${replaced}"`);
    expect(refused.message).toContain('No space left on device');
    expect(app.maintenance.isActive()).toBe(false);

    // Once it can be saved (at the next start: here by hand), the old data is in the restore-point file.
    app.backups.createBackup = createBackup;
    await app.restore.resume();
    expect(await leftovers(app.db.connection.database)).toEqual([]);
    const point = readdirSync(app.backups.backupsFolder).find((name) => name.startsWith('restore-point-'))!;
    expect((await restore(app, point)).error).toBeNull();
    expect(await snapshot(app.db)).toEqual(changed);
  });

  it('restores in place, in one transaction, when the role may not create databases', async () => {
    const { app, backup, before } = await seededAsOwner({ createDb: false });
    await changeData(app.db);

    const status = await restore(app, backup);

    expect(status.error).toBeNull();
    expect(status.task).toBe('done');
    expect(status.log.join('\n')).toMatch(/Restoring in place, in one transaction \(the database role may not create databases/);
    expect(await snapshot(app.db)).toEqual(before);
  });

  it('stages the restore for an owner with CREATEDB, and rolls back by swapping back', async () => {
    const { app, backup, before } = await seededAsOwner({ createDb: true });
    await changeData(app.db);

    const status = await restore(app, backup);

    expect(status.error).toBeNull();
    expect(status.log.join('\n')).toContain('Restoring into a new database');
    expect(await snapshot(app.db)).toEqual(before);
    await app.restore.idle();
    expect(await leftovers(app.db.connection.database)).toEqual([]);

    await app.db.query('UPDATE users SET is_admin = false');
    const { filename: noAdmin } = await app.backups.createBackup();
    await app.db.query('UPDATE users SET is_admin = true');
    const failed = await restore(app, noAdmin);
    expect(failed.error).toMatch(/no admin user.*Rolled back to the database as it was before the restore: OK/s);
    expect(await snapshot(app.db)).toEqual(before);
    expect(await leftovers(app.db.connection.database)).toEqual([]);
  });

  it('changes nothing when a session the role may not end holds the database at the swap', async () => {
    const { app, backup } = await seededAsOwner({ createDb: true });
    await changeData(app.db);
    const current = await snapshot(app.db);
    // A superuser's session on the live database: an owner without superuser rights cannot end it.
    const status = await withClient(app.db.connection.database, () => restore(app, backup));

    expect(status.task).toBe('error');
    expect(status.error).toMatch(/is being accessed by other users.*The database was not changed: the backup was being restored into a separate database, which was dropped/s);
    expect(await snapshot(app.db)).toEqual(current);
    expect(await leftovers(app.db.connection.database)).toEqual([]);
  });

  it('in place: rolls back to the restore point when a hand-edited dump committed half way before failing', async () => {
    const { app, backup } = await seededAsOwner({ createDb: false });
    await changeData(app.db);
    const current = await snapshot(app.db);
    commitsHalfWay(app, backup, 'uploaded-commits.sql.gz');

    const status = await restore(app, 'uploaded-commits.sql.gz');

    expect(status.task).toBe('error');
    expect(status.error).toMatch(/no_such_table.*Rolled back to restore-point-.*: OK$/s);
    expect(await snapshot(app.db)).toEqual(current);
  });

  it('rolls back a backup without an admin, saying why', async () => {
    const { app } = await seeded();
    await app.db.query('UPDATE users SET is_admin = false');
    const { filename: noAdmin } = await app.backups.createBackup();
    await app.db.query("UPDATE users SET is_admin = true WHERE email LIKE 'admin-%'");
    await changeData(app.db);
    const current = await snapshot(app.db);

    const status = await restore(app, noAdmin);

    expect(status.task).toBe('error');
    expect(status.active).toBe(true);
    // Staged: the previous database was kept aside, so the rollback is a rename, not a reload.
    expect(status.error).toMatch(/^Restore failed: the backup has no admin user.*Rolled back to the database as it was before the restore: OK/s);
    expect(await snapshot(app.db)).toEqual(current);
    expect(await app.auth.hasAdmin()).toBe(true);
    expect(status.log.join('\n')).toContain('the previous database gets its name back');
    expect(await leftovers(app.db.connection.database)).toEqual([]);
  });

  it('migrates a backup made by an older version', async () => {
    const { app } = await seeded();
    const old = await createDatabase('old');
    try {
      await withClient(old, async (client) => {
        await migrate(client, { upTo: '1.0.0' });
        await seed(client, { tag: 'old' });
      });
      const name = `immich-db-backup-20240101T000000-v1.0.0-pg${await app.db.serverVersion()}.sql.gz`;
      const { host, port, user } = testCluster();
      const sql = execFileSync(pgTool('pg_dump'), ['--clean', '--if-exists', '-h', host, '-p', String(port), '-U', user, old]);
      writeFileSync(join(app.backups.backupsFolder, name), gzipSync(sql));

      const status = await restore(app, name);

      expect(status.error).toBeNull();
      expect(status.task).toBe('done');
      expect(status.log.join('\n')).toContain('Applied 1 migration(s): 1100000000000-Albums');
      const state = await app.db.withClient((client) => schemaState(client));
      expect(state).toMatchObject({ pending: [], unknown: [], version: APP_VERSION });
      expect((await snapshot(app.db)).users).toContain('admin-old@example.com');
      await app.db.query('SELECT count(*) FROM albums');
    } finally {
      await dropDatabase(old);
    }
  });

  it('refuses a backup made by a newer version and changes nothing', async () => {
    const { app } = await seeded();
    await app.db.query("INSERT INTO migrations (name, version) VALUES ('9999999999999-Future', '9.0.0')");
    const { filename } = await app.backups.createBackup();
    await app.db.query("DELETE FROM migrations WHERE name = '9999999999999-Future'");
    await changeData(app.db);
    const current = await snapshot(app.db);

    const status = await restore(app, filename);

    expect(status.task).toBe('error');
    expect(status.error).toMatch(/made by a newer version of Lifeboat .*9999999999999-Future.*Rolled back to .*: OK/s);
    expect(await snapshot(app.db)).toEqual(current);
    const { rows } = await app.db.query("SELECT 1 FROM migrations WHERE name = '9999999999999-Future'");
    expect(rows).toHaveLength(0);
  });

  it('refuses a dump with a shell escape: the command never runs and nothing changes', async () => {
    const { app, backup } = await seeded();
    await changeData(app.db);
    const current = await snapshot(app.db);
    const marker = join(tmpdir(), `lifeboat-pwned-${process.pid}-${Date.now()}`);
    // Without the dump's own \restrict (older pg_dump): psql's restricted mode, with Lifeboat's own key, refuses it.
    editDump(app, backup, 'uploaded-hostile.sql.gz', (sql) =>
      beforeEnd(sql.replace(/^\\(un)?restrict .*$/gm, ''), `INSERT INTO public.users (email) VALUES ('x@example.com');\n\\! touch ${marker}\n`),
    );

    const status = await restore(app, 'uploaded-hostile.sql.gz');

    expect(status.task).toBe('error');
    expect(status.error).toMatch(/backslash commands are restricted/);
    expect(status.error).toContain('The database was not changed');
    expect(existsSync(marker)).toBe(false);
    expect(await snapshot(app.db)).toEqual(current);
  });

  it('restores the instance database from a pg_dumpall cluster dump', async () => {
    const { app, before } = await seeded();
    const { host, port, user } = testCluster();
    const sql = execFileSync(pgTool('pg_dumpall'), ['--clean', '--if-exists', '-h', host, '-p', String(port), '-U', user], { maxBuffer: 512 * 1024 * 1024 });
    writeFileSync(join(app.backups.backupsFolder, 'uploaded-cluster.sql.gz'), gzipSync(sql));
    await changeData(app.db);

    const dump = await app.restore.validate('uploaded-cluster.sql.gz');
    expect(dump.kind).toBe('cluster');
    const status = await app.restore.restore(dump, { by: 'the test' });

    expect(status.error).toBeNull();
    expect(status.task).toBe('done');
    expect(status.log.join('\n')).toContain('Restoring into a new database');
    expect(await snapshot(app.db)).toEqual(before);
  });

  it('checks the backup before anything changes: bad name 400, missing 404, not a dump 400', async () => {
    const { app } = await seeded();
    await expectRefused(app.restore.startRestore('../etc/passwd.sql.gz', { by: 'test' }), 400, /Invalid backup name/);
    await expectRefused(app.restore.startRestore('nope.sql.gz', { by: 'test' }), 404);
    writeFileSync(join(app.backups.backupsFolder, 'uploaded-text.sql.gz'), 'hello');
    await expectRefused(app.restore.startRestore('uploaded-text.sql.gz', { by: 'test' }), 400, /not a valid gzip/);
    writeFileSync(join(app.backups.backupsFolder, 'uploaded-notes.sql.gz'), gzipSync('just some notes\n'));
    await expectRefused(app.restore.startRestore('uploaded-notes.sql.gz', { by: 'test' }), 400, /does not look like a PostgreSQL dump/);
    expect(app.maintenance.isActive()).toBe(false);
  });

  it('answers 409 to a second restore or a backup while one runs', async () => {
    const { app, backup } = await seeded();
    const first = await app.restore.startRestore(backup, { by: 'test' });
    expect(first.token).toBeTruthy();
    expect(first.status).toMatchObject({ active: true, action: 'restore_database', backup });

    await expectRefused(app.restore.startRestore(backup, { by: 'test' }), 409, /already running/);
    expect(() => app.lock.acquire('backup')).toThrow(/already running/);

    const status = await finished(app);
    expect(status.task).toBe('done');
  });

  it('shows anonymous viewers the progress but never the error or the log', async () => {
    const { app } = await seeded();
    writeFileSync(join(app.backups.backupsFolder, 'uploaded-cut.sql.gz'), gzipSync('--\n-- PostgreSQL database dump\n--\nCREATE TABLE x (a int);\n'));
    const status = await restore(app, 'uploaded-cut.sql.gz');
    expect(status.error).toMatch(/incomplete/);

    const anonymous = app.maintenance.publicStatus(false);
    expect(anonymous).toMatchObject({ active: true, task: 'error', error: ANONYMOUS_ERROR, log: [] });
    expect(JSON.stringify(anonymous)).not.toContain('incomplete');
    expect(app.maintenance.publicStatus(true).error).toBe(status.error);
  });
});

