import type { MaintenanceStatus, MaintenanceTask } from '../../shared/types';
import type { MaintenanceService } from '../services/maintenance.service';

const PROGRESS_INTERVAL_MS = 250;

/**
 * The one logger the restore steps share: every line and task change goes into the
 * maintenance status (stored, then broadcast to the page and the command line), and is
 * echoed to the server log. Progress ticks are throttled; the page still gets several a second.
 */
export class RestoreLog {
  private lastProgressAt = 0;
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly maintenance: MaintenanceService,
    private readonly echo: (line: string) => void,
  ) {}

  get status(): MaintenanceStatus {
    return this.maintenance.status;
  }

  async task(task: MaintenanceTask, line: string, patch: Partial<MaintenanceStatus> = {}): Promise<void> {
    await this.pending;
    this.lastProgressAt = 0;
    this.echo(line);
    await this.maintenance.setStatus({ task, progress: 0, ...patch }, line);
  }

  async info(line: string): Promise<void> {
    await this.pending;
    this.echo(line);
    await this.maintenance.log(line);
  }

  /** 0..1 within the current task; never backwards (setStatus keeps it monotonic). */
  progress(fraction: number): void {
    const now = Date.now();
    if (fraction < 1 && now - this.lastProgressAt < PROGRESS_INTERVAL_MS) return;
    this.lastProgressAt = now;
    this.pending = this.pending.then(() => this.maintenance.setStatus({ progress: fraction })).catch(() => undefined);
  }
}
