import { describe, expect, it } from 'vitest';
import { assessBackupHealth } from './backup-health';

const daily = { enabled: true, cronExpression: '0 02 * * *', keepLastAmount: 14 };
const now = new Date(2025, 5, 10, 12, 0, 0); // local time, as croner reads the expression

describe('assessBackupHealth', () => {
  it('is fine when the last success is after the second most recent scheduled run', () => {
    const health = assessBackupHealth(daily, new Date(2025, 5, 10, 2, 0, 30), now);
    expect(health.warning).toBeNull();
    expect(health.lastSuccessAt).toBe(new Date(2025, 5, 10, 2, 0, 30).toISOString());
  });

  it('tolerates one missed run (it may still be running) but warns after two', () => {
    expect(assessBackupHealth(daily, new Date(2025, 5, 9, 2, 0, 30), now).warning).toBeNull(); // only today's 2:00 run missing
    expect(assessBackupHealth(daily, new Date(2025, 5, 9, 1, 0), now).warning).toMatch(/older than the schedule allows/); // yesterday's too
  });

  it('warns when there is no backup at all while enabled', () => {
    expect(assessBackupHealth(daily, null, now).warning).toMatch(/No successful database backup yet/);
  });

  it('does not call an old backup overdue when the schedule is off, but says when there is none', () => {
    const off = { ...daily, enabled: false };
    expect(assessBackupHealth(off, new Date(2020, 0, 1), now).warning).toBeNull();
    expect(assessBackupHealth(off, null, now).warning).toMatch(/turned off/);
  });

  it('follows the schedule: hourly backups are overdue after two hours', () => {
    const hourly = { ...daily, cronExpression: '0 * * * *' };
    expect(assessBackupHealth(hourly, new Date(2025, 5, 10, 11, 0, 5), now).warning).toBeNull();
    expect(assessBackupHealth(hourly, new Date(2025, 5, 10, 9, 30), now).warning).not.toBeNull();
  });

  it('warns about a stored schedule that is not valid', () => {
    expect(assessBackupHealth({ ...daily, cronExpression: 'nonsense' }, new Date(), now).warning).toMatch(/not valid/);
  });
});
