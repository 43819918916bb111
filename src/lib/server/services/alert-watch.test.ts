import { describe, expect, it } from 'vitest';
import { DEFAULT_SYSTEM_CONFIG } from '../../shared/cron-schedule';
import type { MaintenanceStatus, SystemConfig } from '../../shared/types';
import { AlertWatch, staleSince } from './alert-watch';
import type { AlertEvent } from './notification.service';

const config = (database: Partial<SystemConfig['backup']['database']>): SystemConfig => ({ ...DEFAULT_SYSTEM_CONFIG, backup: { ...DEFAULT_SYSTEM_CONFIG.backup, database: { ...DEFAULT_SYSTEM_CONFIG.backup.database, ...database } } });
const hour = 3_600_000;

describe('staleSince (no successful backup for longer than twice the interval)', () => {
  const now = new Date('2025-06-10T12:30:00Z');
  it('compares the last success with twice the time between the last two runs', () => {
    const daily = config({ cronExpression: '0 2 * * *' });
    expect(staleSince(daily, new Date(now.getTime() - 47 * hour), now)).toBeNull();
    expect(staleSince(daily, new Date(now.getTime() - 49 * hour), now)).toEqual({ intervalMs: 24 * hour });
  });
  it('says nothing when the schedule is off or invalid, or there is no backup to compare', () => {
    const old = new Date('2020-01-01T00:00:00Z');
    expect(staleSince(config({ enabled: false }), old, now)).toBeNull();
    expect(staleSince(config({ cronExpression: 'bogus' }), old, now)).toBeNull();
    expect(staleSince(config({}), null, now)).toBeNull();
  });
});

describe('AlertWatch.onMaintenance (restore outcomes)', () => {
  const status = (patch: Partial<MaintenanceStatus>): MaintenanceStatus => ({ active: true, action: 'restore_database', task: 'restore', progress: 0, log: [], error: null, backup: 'b.sql.gz', ...patch });
  it('raises one alert when a restore reaches done or error, none for other operations or repeats', () => {
    const events: AlertEvent[] = [];
    const watch = new AlertWatch({ config: async () => config({}), lastSuccess: async () => null, notify: (event) => events.push(event), logError: () => undefined });
    watch.onMaintenance(status({ task: 'restore' }));
    watch.onMaintenance(status({ task: 'done', active: false }));
    watch.onMaintenance(status({ task: 'done', active: false }));
    watch.onMaintenance(status({ task: 'restore' }));
    watch.onMaintenance(status({ task: 'error', error: 'psql failed', restorePoint: 'rp.sql' }));
    watch.onMaintenance(status({ action: 'start', task: 'idle' }));
    watch.onMaintenance(status({ action: 'start', task: 'error' }));
    expect(events.map((event) => event.type)).toEqual(['restore-finished', 'restore-failed']);
    expect(events[1]).toMatchObject({ error: 'psql failed', filename: 'b.sql.gz', message: expect.stringContaining('The restore point rp.sql was kept.') });
  });
});
