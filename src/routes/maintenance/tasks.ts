import type { MaintenanceStatus, MaintenanceTask } from '$lib/shared/types';

/** The current task in words, as the maintenance screen shows it. */
export const TASK_WORDS: Record<MaintenanceTask, string> = {
  backup: 'Creating a restore point',
  restore: 'Restoring the backup',
  swap: 'Swapping in the restored database',
  migrations: 'Running migrations',
  health: 'Checking health',
  rollback: 'Rolling back',
  done: 'Done',
  error: 'Failed',
  idle: 'Waiting',
};

export const RESTORE_STEPS = ['backup', 'restore', 'swap', 'migrations', 'health'] as const;
export type RestoreStep = (typeof RESTORE_STEPS)[number];

/** Short names for the step list. */
export const STEP_NAMES: Record<RestoreStep, string> = {
  backup: 'Restore point',
  restore: 'Restore',
  swap: 'Swap',
  migrations: 'Migrations',
  health: 'Health check',
};
export const RUNNING: MaintenanceTask[] = [...RESTORE_STEPS, 'rollback'];

/**
 * The steps this restore takes: a staged restore (the default) makes no restore-point file first
 * (the database it replaces is kept as the restore point), the in-place fallback does.
 */
export function stepsOf(status: MaintenanceStatus): RestoreStep[] {
  const inPlace = status.task === 'backup' || !!status.restorePoint;
  return RESTORE_STEPS.filter((step) => step !== (inPlace ? 'swap' : 'backup'));
}

// Rough share of the time each step takes: a restore point and the restore move about the same data.
const WEIGHTS: Record<RestoreStep, number> = { backup: 0.35, restore: 0.5, swap: 0.01, migrations: 0.05, health: 0.03 };

/** Overall progress of a restore, 0..1: it only grows, across steps as within them. */
export function overallProgress(status: MaintenanceStatus): number {
  const steps = stepsOf(status);
  const index = steps.indexOf(status.task as RestoreStep);
  if (index < 0) return status.task === 'done' ? 1 : status.progress;
  const total = steps.reduce((sum, step) => sum + WEIGHTS[step], 0);
  const before = steps.slice(0, index).reduce((sum, step) => sum + WEIGHTS[step], 0);
  return (before + WEIGHTS[steps[index]] * Math.max(0, Math.min(1, status.progress))) / total;
}

/** "about 2 min left", "about 40 s left", or null while there is no estimate. */
export function timeLeft(seconds: number | null | undefined): string | null {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return null;
  if (seconds < 60) return `about ${Math.max(1, Math.round(seconds))} s left`;
  const minutes = Math.round(seconds / 60);
  return minutes < 120 ? `about ${minutes} min left` : `about ${Math.round(minutes / 60)} h left`;
}

export type View = 'progress' | 'done' | 'failed' | 'wizard' | 'waiting' | 'ended';

export function viewOf(status: MaintenanceStatus, maintenanceAdmin: boolean): View {
  if (RUNNING.includes(status.task)) return 'progress';
  if (status.task === 'done') return 'done';
  if (status.task === 'error') return status.active ? 'failed' : 'ended';
  if (!status.active) return 'ended';
  return maintenanceAdmin ? 'wizard' : 'waiting';
}
