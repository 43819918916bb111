import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKUP_DATABASE } from '../src/lib/server/services/job.service';
import { seedLibrary } from './helpers/backup-seed';
import { startInstance, type TestInstance } from './helpers/pg';
import { startSmtp, startWebhookReceiver, type ReceivedMail } from './helpers/receivers';
import { S3_ACCESS_KEY, startS3, type TestS3 } from './helpers/s3';

let instance: TestInstance;
let smtp: Awaited<ReturnType<typeof startSmtp>>;
let hook: Awaited<ReturnType<typeof startWebhookReceiver>>;
let s3: TestS3;
const lines: string[] = [];

/** A port nothing listens on: taken from a server that was closed at once. */
async function closedPort(): Promise<number> {
  const probe = await startWebhookReceiver();
  const port = Number(new URL(probe.url).port);
  await probe.close();
  return port;
}

function email(overrides: Record<string, unknown> = {}) {
  return { enabled: true, host: '127.0.0.1', port: smtp.port, secure: false, username: 'lifeboat', password: 'smtp-password', from: 'Lifeboat <lifeboat@example.com>', to: 'admin@example.com', ...overrides };
}

async function runBackup() {
  const result = await (await instance.app.jobs.create(BACKUP_DATABASE)).done;
  await instance.app.backgroundIdle();
  await instance.app.notifications.idle();
  return result;
}

beforeAll(async () => {
  [smtp, hook, s3] = await Promise.all([startSmtp({ user: 'lifeboat', password: 'smtp-password' }), startWebhookReceiver(), startS3()]);
  instance = await startInstance({ log: (line) => lines.push(line) });
  await instance.app.db.withClient((client) => seedLibrary(client, { users: 1, assetsPerUser: 3 }));
  instance.app.notifications.retry = { attempts: 2, delayMs: 10 };
  instance.app.offsite.retry = { attempts: 1, delayMs: 10 };
  await instance.app.systemConfig.update({ notifications: { email: email(), webhook: { enabled: true, url: hook.url } } });
});
afterAll(async () => {
  await instance?.close();
  await Promise.all([smtp?.close(), hook?.close(), s3?.close()]);
});

describe('alerts by email and webhook (real SMTP server and HTTP receiver)', () => {
  it('a failed backup sends an email and a webhook with the error', async () => {
    const folder = instance.app.backups.backupsFolder;
    // A real failure: the backups folder is replaced by a file, so the dump cannot be written.
    renameSync(folder, `${folder}.away`);
    writeFileSync(folder, 'not a folder');
    let result;
    try {
      result = await runBackup();
    } finally {
      rmSync(folder);
      renameSync(`${folder}.away`, folder);
    }
    expect(result.result).toBe('failed');
    expect(smtp.mails).toHaveLength(1);
    const mail: ReceivedMail = smtp.mails[0];
    expect(mail).toMatchObject({ subject: '[Lifeboat] Backup failed', to: ['admin@example.com'], from: 'lifeboat@example.com', user: 'lifeboat' });
    expect(mail.body).toContain(result.error!.slice(0, 40));
    expect(hook.hooks).toHaveLength(1);
    const body = hook.hooks[0].json;
    expect(body).toMatchObject({ event: 'backup-failed', title: 'Backup failed', error: result.error });
    expect(body.text).toMatch(/^\[Lifeboat on .+\] Backup failed: The database backup started at .+ failed: /);
    expect(body.content).toBe(body.text);
    expect((await instance.app.notifications.status()).channels).toMatchObject({ email: { ok: true, attempts: 1 }, webhook: { ok: true, attempts: 1 } });
  });

  it('an unreachable SMTP server and a refusing webhook do not fail the backup: retried, then shown as failed alerts; a wrong off-site secret raises the failed-copy alert', async () => {
    smtp.mails.length = 0;
    hook.hooks.length = 0;
    hook.status = 500;
    await instance.app.systemConfig.update({
      notifications: { email: email({ port: await closedPort() }) },
      backup: { offsite: { enabled: true, endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, prefix: '', accessKeyId: S3_ACCESS_KEY, secretAccessKey: 'wrong-secret', forcePathStyle: true, keepLastAmount: 3 } },
    });
    const result = await runBackup();
    hook.status = 200;
    expect(result.result).toBe('success');
    // The webhook was tried twice (the retry), with the failed-copy alert naming the cause.
    expect(hook.hooks.map((received) => received.json.event)).toEqual(['offsite-failed', 'offsite-failed']);
    expect(hook.hooks[0].json.text).toMatch(/Off-site copy failed: The backup .+ was not copied off-site: The secret access key is wrong/);
    const { channels, recent } = await instance.app.notifications.status();
    expect(channels.email).toMatchObject({ ok: false, attempts: 2, type: 'offsite-failed', error: expect.stringMatching(/SMTP server 127\.0\.0\.1:\d+: .*ECONNREFUSED/) });
    expect(channels.webhook).toMatchObject({ ok: false, attempts: 2, error: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+: The webhook answered 500/) });
    expect(channels.webhook!.error).not.toContain('secret-token');
    expect(recent[0].ok).toBe(false);
    expect(lines.join('\n')).not.toMatch(/wrong-secret|smtp-password/);
    await instance.app.systemConfig.update({ notifications: { email: email() }, backup: { offsite: { enabled: false } } });
  });

  it('the stale-backup alert fires once when the last success is older than twice the interval', async () => {
    await instance.app.systemConfig.update({ backup: { database: { enabled: true, cronExpression: '0 * * * *' } } });
    hook.hooks.length = 0;
    const { lastSuccessAt } = await instance.app.jobs.backupHealth();
    const last = new Date(lastSuccessAt!).getTime();
    const hour = 3600_000;
    expect(await instance.app.alertWatch.checkStale(new Date(last + 1.5 * hour))).toBe(false);
    expect(await instance.app.alertWatch.checkStale(new Date(last + 2.5 * hour))).toBe(true);
    // One alert per stale stretch, not one per hourly check.
    expect(await instance.app.alertWatch.checkStale(new Date(last + 3.5 * hour))).toBe(false);
    await instance.app.notifications.idle();
    expect(hook.hooks.map((received) => received.json.event)).toEqual(['backup-stale']);
    expect(hook.hooks[0].json.message).toMatch(/more than twice the schedule's interval of 1 hours/);
    expect(smtp.mails.at(-1)?.subject).toBe('[Lifeboat] No recent backup');
    await instance.app.systemConfig.update({ backup: { database: { cronExpression: '0 02 * * *' } } });
  });

  it('"Send test" per channel answers what worked and what did not, with the form\'s unsaved values', async () => {
    smtp.mails.length = 0;
    hook.hooks.length = 0;
    const both = await instance.app.notifications.test();
    expect(both).toEqual({
      ok: true,
      results: [
        { channel: 'email', ok: true, message: 'Test email sent to admin@example.com.' },
        { channel: 'webhook', ok: true, message: expect.stringMatching(/^Test webhook sent to http:\/\/127\.0\.0\.1:\d+\.$/) },
      ],
    });
    expect(smtp.mails.map((mail) => mail.subject)).toEqual(['[Lifeboat] Test alert']);
    expect(hook.hooks[0].json).toMatchObject({ event: 'test', title: 'Test alert' });

    const wrongPassword = await instance.app.notifications.test({ channel: 'email', notifications: { email: { password: 'not-it' } } });
    expect(wrongPassword.ok).toBe(false);
    expect(wrongPassword.results).toEqual([{ channel: 'email', ok: false, message: expect.stringMatching(/Invalid login|Invalid username or password/) }]);
    const badUrl = await instance.app.notifications.test({ channel: 'webhook', notifications: { webhook: { url: `http://127.0.0.1:${await closedPort()}/x` } } });
    expect(badUrl.results[0]).toMatchObject({ channel: 'webhook', ok: false, message: expect.stringMatching(/ECONNREFUSED|fetch failed/) });
    const incomplete = await instance.app.notifications.test({ channel: 'email', notifications: { email: { host: '' } } });
    expect(incomplete.results[0].message).toMatch(/notifications\.email\.host/);
  });

  it('a backup found corrupted raises the verification alert by email and webhook, as a failed backup does', async () => {
    hook.hooks.length = 0;
    smtp.mails.length = 0;
    const [backup] = (await instance.app.backups.listBackups()).filter((file) => file.kind === 'routine');
    const path = `${instance.app.backups.backupsFolder}/${backup.filename}`;
    const bytes = readFileSync(path);
    try {
      const damaged = Buffer.from(bytes);
      damaged[Math.floor(damaged.length / 2)] ^= 0xff;
      writeFileSync(path, damaged);
      expect((await instance.app.verification.verify(backup.filename)).status).toBe('corrupted');
      await instance.app.notifications.idle();
      const received = hook.hooks.find((entry) => entry.json.event === 'verification-failed');
      expect(received?.json).toMatchObject({ filename: backup.filename, error: expect.stringMatching(/SHA-256/) });
      expect(smtp.mails.some((mail) => /verification/i.test(mail.subject) && mail.body.includes(backup.filename))).toBe(true);
    } finally {
      writeFileSync(path, bytes);
    }
    expect((await instance.app.verification.verify(backup.filename)).status).toBe('verified');
  });

  it('a restore that finishes sends the "Restore finished" alert', async () => {
    hook.hooks.length = 0;
    const [backup] = (await instance.app.backups.listBackups()).filter((file) => file.kind === 'routine');
    mkdirSync(instance.app.backups.backupsFolder, { recursive: true });
    const status = await instance.app.restore.restore(await instance.app.restore.validate(backup.filename), { by: 'the alerts test' });
    expect(status.error).toBeNull();
    await instance.app.notifications.idle();
    expect(hook.hooks.map((received) => received.json.event)).toContain('restore-finished');
    expect(hook.hooks.find((received) => received.json.event === 'restore-finished')!.json).toMatchObject({ filename: backup.filename });
  });
});
