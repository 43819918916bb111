import type { MaintenanceStatus, MaintenanceTask } from '../../shared/types';

/** Where a restore's lines and progress go: the maintenance status for a restore, the drill's own record for a restore drill. */
export interface RestoreLogSink {
  readonly status: MaintenanceStatus;
  setStatus(patch: Partial<MaintenanceStatus>, logLine?: string): Promise<void>;
  log(line: string): Promise<void>;
}

const PROGRESS_INTERVAL_MS = 250;

/**
 * The one logger the restore steps share: every line and task change goes into the
 * maintenance status (stored, then broadcast to the page and the command line), and is
 * echoed to the server log. Progress ticks are throttled; the page still gets several a second.
 */
export class RestoreLog {
  private lastProgressAt = 0;
  private taskStartedAt = Date.now();
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly maintenance: RestoreLogSink,
    private readonly echo: (line: string) => void,
  ) {}

  get status(): MaintenanceStatus {
    return this.maintenance.status;
  }

  async task(task: MaintenanceTask, line: string, patch: Partial<MaintenanceStatus> = {}): Promise<void> {
    await this.pending;
    this.lastProgressAt = 0;
    this.taskStartedAt = Date.now();
    this.echo(line);
    await this.maintenance.setStatus({ task, progress: 0, stage: line, etaSeconds: null, ...patch }, line);
  }

  async info(line: string): Promise<void> {
    await this.pending;
    this.echo(line);
    await this.maintenance.log(line);
  }

  /**
   * 0..1 within the current task; never backwards (setStatus keeps it monotonic). `stage` says what
   * runs now; the time left is estimated from the task's pace so far.
   */
  progress(fraction: number, stage?: string): void {
    const now = Date.now();
    if (fraction < 1 && now - this.lastProgressAt < PROGRESS_INTERVAL_MS) return;
    this.lastProgressAt = now;
    const patch: Partial<MaintenanceStatus> = { progress: fraction, etaSeconds: estimateSeconds(now - this.taskStartedAt, fraction) };
    if (stage) patch.stage = stage;
    this.pending = this.pending.then(() => this.maintenance.setStatus(patch)).catch(() => undefined);
  }
}

/** Time left at the pace so far; null until there is enough to go on (2 s and 2 %). */
export function estimateSeconds(elapsedMs: number, fraction: number): number | null {
  if (fraction >= 1) return 0;
  if (elapsedMs < 2000 || fraction < 0.02) return null;
  return Math.round((elapsedMs * (1 - fraction)) / fraction / 1000);
}
