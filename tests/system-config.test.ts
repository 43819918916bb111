import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cronError, nextRuns, validateBackupSettings } from '../src/lib/shared/cron-schedule';
import { ServiceError } from '../src/lib/server/errors';
import { SYSTEM_CONFIG_KEY } from '../src/lib/server/services/system-config.service';
import type { SystemConfig } from '../src/lib/shared/types';
import { startInstance, withClient, type TestInstance } from './helpers/pg';

describe('cron rules (shared by the settings page and the server)', () => {
  it('accepts 5- and 6-field expressions and lists the next runs', () => {
    expect(cronError('0 02 * * *')).toBeNull();
    expect(cronError('*/10 * * * * *')).toBeNull();
    const runs = nextRuns('0 02 * * *', 3, new Date(2025, 0, 1, 12, 0));
    expect(runs.map((d) => [d.getDate(), d.getHours(), d.getMinutes()])).toEqual([[2, 2, 0], [3, 2, 0], [4, 2, 0]]);
  });

  it('explains what is wrong', () => {
    expect(cronError('')).toMatch(/Enter a cron expression/);
    expect(cronError('bogus')).toMatch(/Invalid cron expression "bogus"/);
    expect(cronError('61 * * * *')).toMatch(/minute/);
    expect(cronError('0 0 31 2 *')).toMatch(/never runs/);
    expect(cronError(5)).toMatch(/Enter a cron expression/);
  });

  it('checks the cron expression only when enabled, and keepLastAmount always', () => {
    expect(validateBackupSettings({ enabled: false, cronExpression: 'bogus', keepLastAmount: 3 })).toEqual({ settings: { enabled: false, cronExpression: 'bogus', keepLastAmount: 3 } });
    for (const keep of [0, -1, 1.5, '3', null, Number.NaN]) {
      const result = validateBackupSettings({ enabled: true, cronExpression: '0 02 * * *', keepLastAmount: keep });
      expect('errors' in result && result.errors.join()).toMatch(/whole number of at least 1/);
    }
    expect(validateBackupSettings({ enabled: 'yes', cronExpression: '0 02 * * *', keepLastAmount: 1 })).toEqual({ errors: ['"enabled" must be true or false.'] });
  });
});

describe('SystemConfigService (real database)', () => {
  let instance: TestInstance;
  beforeAll(async () => {
    instance = await startInstance();
  });
  afterAll(async () => {
    await instance.close();
  });

  const stored = () => withClient(instance.database, async (client) => (await client.query('SELECT value FROM system_metadata WHERE key = $1', [SYSTEM_CONFIG_KEY])).rows[0]?.value ?? null);

  it('gives the reference defaults when nothing is stored', async () => {
    expect(await stored()).toBeNull();
    const config = await instance.app.systemConfig.get();
    expect(config.backup.database).toEqual({ enabled: true, cronExpression: '0 02 * * *', keepLastAmount: 14 });
    expect(config.backup.restorePoints).toEqual({ keepLastAmount: 3 });
    expect(config.backup.uploads).toEqual({ keepDays: 0 });
    expect(config.backup.offsite.enabled).toBe(false);
    expect(config.notifications.email.enabled).toBe(false);
    expect(config.notifications.webhook).toEqual({ enabled: false, url: '' });
  });

  it('merges what is stored over the defaults', async () => {
    await instance.app.metadata.set(SYSTEM_CONFIG_KEY, { backup: { database: { keepLastAmount: 3 } }, somethingOld: true });
    expect((await instance.app.systemConfig.get()).backup.database).toEqual({ enabled: true, cronExpression: '0 02 * * *', keepLastAmount: 3 });
  });

  it('saves a valid change, merged over the current values, and announces it', async () => {
    const seen: SystemConfig[] = [];
    const off = instance.app.systemConfig.onChange((config) => seen.push(config));
    const saved = await instance.app.systemConfig.update({ backup: { database: { cronExpression: ' 30 4 * * 1 ' } } });
    off();
    expect(saved.backup.database).toEqual({ enabled: true, cronExpression: '30 4 * * 1', keepLastAmount: 3 });
    expect(await stored()).toEqual(saved);
    expect(seen).toEqual([saved]);
  });

  it('refuses an invalid cron or keepLastAmount with a 400 and saves nothing', async () => {
    const before = await stored();
    const seen: SystemConfig[] = [];
    const off = instance.app.systemConfig.onChange((config) => seen.push(config));
    for (const database of [{ cronExpression: 'every night' }, { keepLastAmount: 0 }, { keepLastAmount: 2.5 }, { enabled: true, cronExpression: '' }]) {
      const error = await instance.app.systemConfig.update({ backup: { database } }).catch((e) => e);
      expect(error).toBeInstanceOf(ServiceError);
      expect(error.status).toBe(400);
      expect(error.message.length).toBeGreaterThan(10);
    }
    off();
    expect(await stored()).toEqual(before);
    expect(seen).toEqual([]);
  });

  it('accepts an invalid cron while backups are disabled', async () => {
    const saved = await instance.app.systemConfig.update({ backup: { database: { enabled: false, cronExpression: 'later' } } });
    expect(saved.backup.database).toMatchObject({ enabled: false, cronExpression: 'later' });
  });

  const offsite = { enabled: true, endpoint: 'http://127.0.0.1:9000', region: 'us-east-1', bucket: 'lifeboat-test', prefix: '/nightly/', accessKeyId: 'AKIA', secretAccessKey: 'top-secret', forcePathStyle: true, keepLastAmount: 5 };
  const email = { enabled: true, host: 'smtp.example.com', port: 587, secure: false, username: 'me', password: 'mail-secret', from: 'Lifeboat <lifeboat@example.com>', to: 'a@example.com, b@example.com' };

  it('saves off-site, retention and alert settings; secrets are answered as empty strings and kept when sent empty', async () => {
    const saved = await instance.app.systemConfig.updatePublic({
      backup: { offsite, restorePoints: { keepLastAmount: 2 }, uploads: { keepDays: 30 }, database: { generations: { daily: 7, weekly: 4, monthly: 6 } } },
      notifications: { email, webhook: { enabled: true, url: 'http://127.0.0.1:1/hook' } },
    });
    expect(saved.backup.offsite).toMatchObject({ prefix: 'nightly', secretAccessKey: '', secretAccessKeySet: true, keepLastAmount: 5 });
    expect(saved.notifications.email).toMatchObject({ password: '', passwordSet: true, to: 'a@example.com, b@example.com' });
    expect(saved.backup.database.generations).toEqual({ daily: 7, weekly: 4, monthly: 6 });
    expect(JSON.stringify(await instance.app.systemConfig.getPublic())).not.toMatch(/top-secret|mail-secret/);
    // The page sends the form back with the empty secret: the stored one stays.
    await instance.app.systemConfig.update({ backup: { offsite: { ...offsite, secretAccessKey: '', bucket: 'other-bucket' } }, notifications: { email: { ...email, password: '' } } });
    const full = await instance.app.systemConfig.get();
    expect(full.backup.offsite).toMatchObject({ bucket: 'other-bucket', secretAccessKey: 'top-secret' });
    expect(full.notifications.email.password).toBe('mail-secret');
    expect((await stored()).backup.restorePoints).toEqual({ keepLastAmount: 2 });
  });

  it('refuses invalid new values with a 400 naming the field, and saves nothing', async () => {
    const before = await stored();
    const cases: Array<[unknown, RegExp]> = [
      [{ backup: { offsite: { endpoint: 'ftp://x' } } }, /backup\.offsite\.endpoint/],
      [{ backup: { offsite: { bucket: '' } } }, /backup\.offsite\.bucket/],
      [{ backup: { offsite: { keepLastAmount: 0 } } }, /backup\.offsite\.keepLastAmount/],
      [{ backup: { offsite: { prefix: 'a/../b' } } }, /backup\.offsite\.prefix/],
      [{ backup: { restorePoints: { keepLastAmount: 0 } } }, /backup\.restorePoints\.keepLastAmount/],
      [{ backup: { uploads: { keepDays: -1 } } }, /backup\.uploads\.keepDays/],
      [{ backup: { uploads: 'soon' } }, /backup\.uploads/],
      [{ backup: { database: { generations: { daily: 0, weekly: 0, monthly: 0 } } } }, /at least one daily/],
      [{ backup: { database: { generations: { daily: 1.5, weekly: 0, monthly: 0 } } } }, /daily count/],
      [{ notifications: { email: { port: 70000 } } }, /notifications\.email\.port/],
      [{ notifications: { email: { to: 'not-an-address' } } }, /notifications\.email\.to/],
      [{ notifications: { webhook: { url: 'hook' } } }, /notifications\.webhook\.url/],
    ];
    for (const [input, field] of cases) {
      const error = await instance.app.systemConfig.update(input).catch((e) => e);
      expect(error, JSON.stringify(input)).toBeInstanceOf(ServiceError);
      expect(error.status).toBe(400);
      expect(error.message).toMatch(field);
    }
    expect(await stored()).toEqual(before);
  });

  it('asks for a secret when off-site copies are turned on without one', async () => {
    await instance.app.metadata.set(SYSTEM_CONFIG_KEY, {});
    const error = await instance.app.systemConfig.update({ backup: { offsite: { ...offsite, secretAccessKey: '' } } }).catch((e) => e);
    expect(error.message).toMatch(/backup\.offsite\.secretAccessKey: Enter the secret access key/);
  });
});
