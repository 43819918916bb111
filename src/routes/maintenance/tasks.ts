import type { MaintenanceStatus, MaintenanceTask } from '$lib/shared/types';

/** The current task in words, as the maintenance screen shows it. */
export const TASK_WORDS: Record<MaintenanceTask, string> = {
  backup: 'Creating a restore point',
  restore: 'Restoring the backup',
  migrations: 'Running migrations',
  health: 'Checking health',
  rollback: 'Rolling back',
  done: 'Done',
  error: 'Failed',
  idle: 'Waiting',
};

export const RESTORE_STEPS = ['backup', 'restore', 'migrations', 'health'] as const;

/** Short names for the step list. */
export const STEP_NAMES: Record<(typeof RESTORE_STEPS)[number], string> = {
  backup: 'Restore point',
  restore: 'Restore',
  migrations: 'Migrations',
  health: 'Health check',
};
export const RUNNING: MaintenanceTask[] = [...RESTORE_STEPS, 'rollback'];

// Rough share of the time each step takes: a restore point and the restore move about the same data.
const WEIGHTS = [0.35, 0.5, 0.1, 0.05];

/** Overall progress of a restore, 0..1: it only grows, across steps as within them. */
export function overallProgress(status: MaintenanceStatus): number {
  const index = RESTORE_STEPS.indexOf(status.task as (typeof RESTORE_STEPS)[number]);
  if (index < 0) return status.task === 'done' ? 1 : status.progress;
  const before = WEIGHTS.slice(0, index).reduce((sum, weight) => sum + weight, 0);
  return before + WEIGHTS[index] * Math.max(0, Math.min(1, status.progress));
}

export type View = 'progress' | 'done' | 'failed' | 'wizard' | 'waiting' | 'ended';

export function viewOf(status: MaintenanceStatus, maintenanceAdmin: boolean): View {
  if (RUNNING.includes(status.task)) return 'progress';
  if (status.task === 'done') return 'done';
  if (status.task === 'error') return status.active ? 'failed' : 'ended';
  if (!status.active) return 'ended';
  return maintenanceAdmin ? 'wizard' : 'waiting';
}
