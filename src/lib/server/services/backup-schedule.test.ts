import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_SYSTEM_CONFIG } from '../../shared/cron-schedule';
import type { BackupSettings, MaintenanceStatus, SystemConfig } from '../../shared/types';
import { BackupSchedule } from './backup-schedule';

/** Small fakes of the saved config and the maintenance state, as the schedule sees them. */
function setup(settings: Partial<BackupSettings>, maintenanceActive = false) {
  let config: SystemConfig = { ...DEFAULT_SYSTEM_CONFIG, backup: { ...DEFAULT_SYSTEM_CONFIG.backup, database: { ...DEFAULT_SYSTEM_CONFIG.backup.database, ...settings } } };
  const configListeners = new Set<(config: SystemConfig) => void>();
  const statusListeners = new Set<(status: MaintenanceStatus) => void>();
  let active = maintenanceActive;
  const lines: string[] = [];
  const schedule = new BackupSchedule({
    systemConfig: {
      get: async () => config,
      onChange: (listener) => (configListeners.add(listener), () => configListeners.delete(listener)),
    },
    maintenance: {
      isActive: () => active,
      subscribe: (listener) => (statusListeners.add(listener), () => statusListeners.delete(listener)),
    },
    log: (line) => lines.push(line),
    logError: (line) => lines.push(`error: ${line}`),
    onTime: async () => undefined,
  });
  return {
    schedule,
    lines,
    /** Saved elsewhere (a restore brings its own config): nobody is told until maintenance ends. */
    replaceConfig(patch: Partial<BackupSettings>) {
      config = { ...config, backup: { ...config.backup, database: { ...config.backup.database, ...patch } } };
    },
    changeConfig(patch: Partial<BackupSettings>) {
      this.replaceConfig(patch);
      for (const listener of configListeners) listener(config);
    },
    setMaintenance(on: boolean) {
      active = on;
      for (const listener of statusListeners) listener({ active: on, action: on ? 'restore_database' : null, task: on ? 'restore' : 'done', progress: 0, log: [], error: null } as MaintenanceStatus);
    },
    listeners: () => configListeners.size + statusListeners.size,
  };
}

let current: BackupSchedule | null = null;
afterEach(() => current?.stop());

describe('BackupSchedule', () => {
  it('schedules from the saved settings once started, and follows their changes', async () => {
    const fake = setup({ enabled: true, cronExpression: '0 02 * * *' });
    current = fake.schedule;
    fake.schedule.set({ ...DEFAULT_SYSTEM_CONFIG.backup.database, enabled: true, cronExpression: '0 03 * * *' });
    expect(fake.schedule.nextRun).toBeNull();
    await fake.schedule.start();
    expect(fake.schedule.nextRun!.getHours()).toBe(2);
    fake.changeConfig({ cronExpression: '30 04 * * *' });
    expect(fake.schedule.nextRun!.getHours()).toBe(4);
    fake.changeConfig({ enabled: false });
    expect(fake.schedule.nextRun).toBeNull();
    expect(fake.lines).toContain('Scheduled database backups are turned off');
  });

  it('runs nothing on an invalid expression, and says why', async () => {
    const fake = setup({ enabled: true, cronExpression: 'every day' });
    current = fake.schedule;
    await fake.schedule.start();
    expect(fake.schedule.nextRun).toBeNull();
    expect(fake.lines.some((line) => line.startsWith('error: Scheduled database backups are not running'))).toBe(true);
  });

  it('started during maintenance, waits for its end and then reads the config the restore brought', async () => {
    const fake = setup({ enabled: true, cronExpression: '0 02 * * *' }, true);
    current = fake.schedule;
    await fake.schedule.start();
    expect(fake.schedule.nextRun).toBeNull();
    fake.replaceConfig({ cronExpression: '0 05 * * *' });
    fake.setMaintenance(false);
    await expect.poll(() => fake.schedule.nextRun?.getHours()).toBe(5);
  });

  it('stop ends the timer and every subscription', async () => {
    const fake = setup({ enabled: true, cronExpression: '0 02 * * *' });
    await fake.schedule.start();
    expect(fake.listeners()).toBe(2);
    fake.schedule.stop();
    expect(fake.schedule.nextRun).toBeNull();
    expect(fake.listeners()).toBe(0);
  });
});
