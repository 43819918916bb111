import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKUP_DATABASE } from '../src/lib/server/services/job.service';
import { ServiceError } from '../src/lib/server/errors';
import { routineBackupName } from '../src/lib/shared/backup-name';
import type { OffsiteSettings } from '../src/lib/shared/types';
import { rowCounts, seedLibrary } from './helpers/backup-seed';
import { startInstance, type TestInstance } from './helpers/pg';
import { S3_ACCESS_KEY, S3_SECRET, startS3, type TestS3 } from './helpers/s3';

let instance: TestInstance;
let s3: TestS3;
const lines: string[] = [];

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function settings(overrides: Partial<OffsiteSettings> = {}): OffsiteSettings {
  return { enabled: true, endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, prefix: 'lifeboat', accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET, forcePathStyle: true, keepLastAmount: 2, ...overrides };
}

async function backup(): Promise<string> {
  const job = await instance.app.jobs.create(BACKUP_DATABASE);
  const result = await job.done;
  expect(result.error).toBeNull();
  await instance.app.backgroundIdle();
  return result.filename!;
}

beforeAll(async () => {
  s3 = await startS3();
  instance = await startInstance({ log: (line) => lines.push(line) });
  await instance.app.db.withClient((client) => seedLibrary(client));
  instance.app.offsite.retry = { attempts: 2, delayMs: 10 };
  await instance.app.systemConfig.update({ backup: { offsite: settings() } });
});
afterAll(async () => {
  await instance?.close();
  await s3?.close();
});

describe('off-site copies (real S3-compatible server)', () => {
  it('copies a backup to the bucket with the same SHA-256, stored beside it, and lists it as copied', async () => {
    const filename = await backup();
    const local = readFileSync(join(instance.app.backups.backupsFolder, filename));
    // The manifest goes with its backup.
    expect(await s3.keys('lifeboat/')).toEqual([`lifeboat/${filename}`, `lifeboat/${filename}.manifest.json`, `lifeboat/${filename}.sha256`]);
    const remote = await s3.bytes(`lifeboat/${filename}`);
    expect(sha256(remote)).toBe(sha256(local));
    expect((await s3.bytes(`lifeboat/${filename}.sha256`)).toString()).toBe(`${sha256(local)}  ${filename}\n`);
    const listed = (await instance.app.offsite.listBackups()).find((file) => file.filename === filename);
    expect(listed).toMatchObject({ location: 'both', offsite: { status: 'copied', error: null } });
    expect(listed!.offsite!.at).toBeTruthy();
  });

  it('keeps only its own count in the bucket (older routine copies and their checksums removed, each logged)', async () => {
    const old = [1, 2, 3].map((day) => routineBackupName(new Date(Date.UTC(2024, 0, day, 2)), '1.1.0', '15.18'));
    for (const name of old) {
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `lifeboat/${name}`, Body: 'old' }));
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `lifeboat/${name}.sha256`, Body: 'x' }));
    }
    // Not a backup of ours: never touched by the count.
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'lifeboat/notes.txt', Body: 'keep me' }));
    const first = (await s3.keys('lifeboat/')).find((key) => /T\d{6}-v1\.1\.0-pg[\d.]+\.sql\.gz$/.test(key) && !key.includes('2024'))!;
    const filename = await backup();
    const keys = await s3.keys('lifeboat/');
    expect(keys).toEqual([first, `${first}.manifest.json`, `${first}.sha256`, `lifeboat/${filename}`, `lifeboat/${filename}.manifest.json`, `lifeboat/${filename}.sha256`, 'lifeboat/notes.txt'].sort());
    expect(lines.filter((line) => line.startsWith('Off-site retention (keep 2) removed')).length).toBe(3);
  });

  it('lists a backup whose local file is gone as off-site only, fetches it back checked, and restores it', async () => {
    const [newest] = (await instance.app.offsite.listBackups()).filter((file) => file.location === 'both');
    const before = await instance.app.db.withClient((client) => rowCounts(client));
    rmSync(join(instance.app.backups.backupsFolder, newest.filename));
    const listed = (await instance.app.offsite.listBackups()).find((file) => file.filename === newest.filename);
    expect(listed).toMatchObject({ location: 'offsite', kind: 'routine', offsite: { status: 'copied' } });
    expect(listed!.filesize).toBe(newest.filesize);

    const fetched = await instance.app.offsite.fetch(newest.filename);
    expect(fetched.sha256).toBe(sha256(await s3.bytes(`lifeboat/${newest.filename}`)));
    expect(sha256(readFileSync(join(instance.app.backups.backupsFolder, newest.filename)))).toBe(fetched.sha256);
    expect((await instance.app.offsite.listBackups()).find((file) => file.filename === newest.filename)?.location).toBe('both');

    await instance.app.db.withClient((client) => client.query('DELETE FROM assets'));
    const status = await instance.app.restore.restore(await instance.app.restore.validate(newest.filename), { by: 'the off-site test' });
    expect(status.error).toBeNull();
    // The restore point is compressed in the background, under the backup lock.
    await instance.app.restore.idle();
    expect(await instance.app.db.withClient((client) => rowCounts(client))).toEqual(before);
  });

  it('refuses a damaged off-site copy (SHA-256 differs) and leaves nothing behind', async () => {
    const [newest] = (await instance.app.offsite.listBackups()).filter((file) => file.location === 'both');
    rmSync(join(instance.app.backups.backupsFolder, newest.filename));
    const bytes = await s3.bytes(`lifeboat/${newest.filename}`);
    bytes[bytes.length - 20] ^= 0xff;
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `lifeboat/${newest.filename}`, Body: bytes }));
    const error = await instance.app.offsite.fetch(newest.filename).catch((e) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect(error.message).toMatch(/is damaged: its SHA-256 is [0-9a-f]{64}, but [0-9a-f]{64} was recorded/);
    const local = (await instance.app.backups.listBackups()).map((file) => file.filename);
    expect(local).not.toContain(newest.filename);
    const missing = await instance.app.offsite.fetch('immich-db-backup-20200101T000000-v1.1.0-pg15.18.sql.gz').catch((e) => e);
    expect(missing.status).toBe(404);
  });

  it('"Test connection" writes, reads and deletes a test object, and leaves the bucket as it was', async () => {
    const before = await s3.keys();
    const result = await instance.app.offsite.test();
    expect(result.ok).toBe(true);
    expect(result.steps.map((step) => [step.step, step.ok])).toEqual([['settings', true], ['list', true], ['write', true], ['read', true], ['delete', true]]);
    expect(await s3.keys()).toEqual(before);
  });

  it('"Test connection" says exactly what is wrong: secret, key ID, bucket, endpoint, missing fields', async () => {
    const wrongSecret = await instance.app.offsite.test({ ...settings(), secretAccessKey: 'not-the-secret' });
    expect(wrongSecret.ok).toBe(false);
    expect(wrongSecret.steps.at(-1)).toMatchObject({ step: 'list', ok: false, message: expect.stringMatching(/secret access key is wrong/) });
    expect(JSON.stringify(wrongSecret)).not.toContain('not-the-secret');
    const wrongKey = await instance.app.offsite.test({ ...settings(), accessKeyId: 'NOBODY' });
    expect(wrongKey.steps.at(-1)!.message).toMatch(/access key ID "NOBODY" is not known/);
    const noBucket = await instance.app.offsite.test({ ...settings(), bucket: 'no-such-bucket' });
    expect(noBucket.steps.at(-1)!.message).toMatch(/bucket "no-such-bucket" does not exist/);
    const unreachable = await instance.app.offsite.test({ ...settings(), endpoint: 'http://127.0.0.1:1' });
    expect(unreachable.steps.at(-1)!.message).toMatch(/Cannot reach http:\/\/127\.0\.0\.1:1/);
    const incomplete = await instance.app.offsite.test({ ...settings(), bucket: '' });
    expect(incomplete.steps).toEqual([{ step: 'settings', ok: false, message: expect.stringMatching(/backup\.offsite\.bucket/) }]);
  });

  it('a copy refused by the storage (wrong secret) is retried, then shown as failed with the error; the backup itself succeeds', async () => {
    await instance.app.systemConfig.update({ backup: { offsite: { secretAccessKey: 'wrong-secret' } } });
    const filename = await backup();
    expect(lines.some((line) => line.includes('wrong-secret'))).toBe(false);
    const listed = (await instance.app.offsite.listBackups()).find((file) => file.filename === filename);
    expect(listed).toMatchObject({ location: 'local', offsite: { status: 'failed', error: expect.stringMatching(/secret access key is wrong.*\(tried 2 times\)/) } });
    expect((await instance.app.jobs.getStatuses())[0].lastRun).toMatchObject({ result: 'success', filename });
    await instance.app.systemConfig.update({ backup: { offsite: { secretAccessKey: S3_SECRET } } });
  });

  it('marks backups as not copied ("off") while off-site copies are turned off', async () => {
    await instance.app.systemConfig.update({ backup: { offsite: { enabled: false } } });
    const files = await instance.app.offsite.listBackups();
    expect(files.length).toBeGreaterThan(0);
    expect(files.every((file) => file.offsite?.status === 'off' && file.location === 'local')).toBe(true);
    await instance.app.systemConfig.update({ backup: { offsite: { enabled: true } } });
  });
});
