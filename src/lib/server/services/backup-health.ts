import { cronError, previousRuns } from '../../shared/cron-schedule';
import type { BackupSettings } from '../../shared/types';

export interface BackupHealth {
  /** ISO date of the newest successful routine backup, or null when there is none. */
  lastSuccessAt: string | null;
  enabled: boolean;
  /** Why the admin should look, or null when the schedule is being kept. */
  warning: string | null;
}

/**
 * Whether the last good backup is as recent as the schedule promises. One missed run may
 * still be in progress (or the server was down for a moment): it is overdue when it is
 * older than the schedule's second most recent run, i.e. two runs have passed without one.
 */
export function assessBackupHealth(settings: BackupSettings, lastSuccess: Date | null, now = new Date()): BackupHealth {
  const lastSuccessAt = lastSuccess?.toISOString() ?? null;
  const base = { lastSuccessAt, enabled: settings.enabled };
  if (!settings.enabled) {
    return { ...base, warning: lastSuccess ? null : 'Scheduled backups are turned off and there is no backup yet.' };
  }
  if (cronError(settings.cronExpression)) {
    return { ...base, warning: `The backup schedule "${settings.cronExpression}" is not valid, so no scheduled backups run. Fix it in Settings.` };
  }
  if (!lastSuccess) return { ...base, warning: 'No successful database backup yet. Create one from Job Queues.' };
  const [, secondLast] = previousRuns(settings.cronExpression, 2, now);
  if (secondLast && lastSuccess.getTime() < secondLast.getTime()) {
    return { ...base, warning: 'The last successful backup is older than the schedule allows: recent scheduled backups failed or did not run. Check Job Queues and the server log.' };
  }
  return { ...base, warning: null };
}
