import { previousRuns, cronError } from '../../shared/cron-schedule';
import type { MaintenanceStatus, SystemConfig } from '../../shared/types';
import type { AlertEvent } from './notification.service';

export interface AlertWatchDeps {
  config: () => Promise<SystemConfig>;
  /** The newest successful routine backup (job history or files). */
  lastSuccess: () => Promise<Date | null>;
  notify: (event: AlertEvent) => void;
  logError: (line: string) => void;
}

const HOUR = 60 * 60 * 1000;

/**
 * "No successful backup for longer than twice the schedule's interval": the interval is the
 * time between the schedule's last two runs. Null when not stale, or when there is nothing
 * to compare (schedule off or invalid, no backup yet).
 */
export function staleSince(config: SystemConfig, lastSuccess: Date | null, now: Date): { intervalMs: number } | null {
  const { enabled, cronExpression } = config.backup.database;
  if (!enabled || cronError(cronExpression) || !lastSuccess) return null;
  const [last, before] = previousRuns(cronExpression, 2, now);
  if (!last || !before) return null;
  const intervalMs = last.getTime() - before.getTime();
  return now.getTime() - lastSuccess.getTime() > 2 * intervalMs ? { intervalMs } : null;
}

function duration(ms: number): string {
  const hours = ms / HOUR;
  if (hours >= 48) return `${Math.round(hours / 24)} days`;
  if (hours >= 1) return `${Math.round(hours)} hours`;
  return `${Math.round(ms / 60_000)} minutes`;
}

/**
 * Alerts that no job raises itself: the stale-backup check (hourly) and the end of a restore
 * (followed through the maintenance status, which the restore sets, here or from the command line).
 */
export class AlertWatch {
  private timer: NodeJS.Timeout | null = null;
  /** The last success already alerted about: one alert per stale stretch, not one an hour. */
  private alertedFor: number | null = null;
  private lastTask: string | null = null;

  constructor(private readonly deps: AlertWatchDeps) {}

  start(intervalMs = HOUR): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.checkStale(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Returns whether an alert was raised. */
  async checkStale(now = new Date()): Promise<boolean> {
    try {
      const [config, lastSuccess] = await Promise.all([this.deps.config(), this.deps.lastSuccess()]);
      const stale = staleSince(config, lastSuccess, now);
      if (!stale || !lastSuccess || this.alertedFor === lastSuccess.getTime()) return false;
      this.alertedFor = lastSuccess.getTime();
      this.deps.notify({
        type: 'backup-stale',
        title: 'No recent backup',
        message: `The last successful backup was ${duration(now.getTime() - lastSuccess.getTime())} ago (${lastSuccess.toISOString()}), more than twice the schedule's interval of ${duration(stale.intervalMs)}. Check Job Queues and the server log.`,
      });
      return true;
    } catch (error) {
      this.deps.logError(`Stale-backup check failed: ${(error as Error).message}`);
      return false;
    }
  }

  /** Feed with every maintenance status: a restore that reaches "done" or "error" raises one alert. */
  onMaintenance(status: MaintenanceStatus): void {
    const previous = this.lastTask;
    this.lastTask = status.task;
    if (status.action !== 'restore_database' || previous === status.task) return;
    if (status.task === 'done') {
      this.deps.notify({ type: 'restore-finished', title: 'Restore finished', message: `The database was restored from ${status.backup ?? 'a backup'}.`, filename: status.backup ?? null });
    } else if (status.task === 'error') {
      const kept = status.restorePoint ? ` The restore point ${status.restorePoint} was kept.` : '';
      this.deps.notify({
        type: 'restore-failed',
        title: 'Restore failed',
        message: `The restore of ${status.backup ?? 'a backup'} failed: ${status.error ?? 'see the maintenance log'}.${kept}`,
        filename: status.backup ?? null,
        error: status.error ?? null,
      });
    }
  }
}
