import { Cron } from 'croner';
import { cronError } from '../../shared/cron-schedule';
import type { BackupSettings } from '../../shared/types';
import type { MaintenanceService } from './maintenance.service';
import type { SystemConfigService } from './system-config.service';

export interface BackupScheduleDeps {
  systemConfig: Pick<SystemConfigService, 'get' | 'onChange'>;
  maintenance: Pick<MaintenanceService, 'isActive' | 'subscribe'>;
  log: (line: string) => void;
  logError: (line: string) => void;
  /** What runs at each scheduled time (JobService: a backup, unless maintenance or another job is under way). */
  onTime: () => Promise<void>;
}

/**
 * The timer of scheduled database backups: started from the saved settings, replaced when they
 * change, and read again when maintenance ends (a restore may bring another config). An invalid
 * or disabled schedule runs nothing and says why in the log.
 */
export class BackupSchedule {
  private cron: Cron | null = null;
  private started = false;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly deps: BackupScheduleDeps) {}

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { systemConfig, maintenance } = this.deps;
    this.unsubscribe.push(systemConfig.onChange((config) => this.set(config.backup.database)));
    let wasActive = maintenance.isActive();
    this.unsubscribe.push(
      maintenance.subscribe((status) => {
        if (wasActive && !status.active) void this.reload();
        wasActive = status.active;
      }),
    );
    if (!wasActive) await this.reload();
  }

  get nextRun(): Date | null {
    return this.cron?.nextRun() ?? null;
  }

  /** Replaces the timer (once started). */
  set(settings: BackupSettings): void {
    if (!this.started) return;
    this.cron?.stop();
    this.cron = null;
    if (!settings.enabled) {
      this.deps.log('Scheduled database backups are turned off');
      return;
    }
    const problem = cronError(settings.cronExpression);
    if (problem) {
      this.deps.logError(`Scheduled database backups are not running: ${problem}`);
      return;
    }
    this.cron = new Cron(settings.cronExpression.trim(), { mode: '5-or-6-parts', unref: true, catch: (error) => this.deps.logError(`Scheduler error: ${String(error)}`) }, () =>
      this.deps.onTime(),
    );
    this.deps.log(`Database backups scheduled "${settings.cronExpression}", next at ${this.cron.nextRun()?.toISOString()}`);
  }

  stop(): void {
    this.cron?.stop();
    this.cron = null;
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
  }

  private async reload(): Promise<void> {
    try {
      this.set((await this.deps.systemConfig.get()).backup.database);
    } catch (error) {
      this.deps.logError(`Could not read the backup schedule: ${(error as Error).message}`);
    }
  }
}
