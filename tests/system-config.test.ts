import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cronError, nextRuns, validateBackupSettings } from '../src/lib/shared/cron-schedule';
import { ServiceError } from '../src/lib/server/services/errors';
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
    expect(await instance.app.systemConfig.get()).toEqual({ backup: { database: { enabled: true, cronExpression: '0 02 * * *', keepLastAmount: 14 } } });
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
});
