import { describe, expect, it } from 'vitest';
import type { MaintenanceStatus } from '$lib/shared/types';
import { overallProgress, stepsOf, timeLeft, viewOf } from './tasks';

const status = (patch: Partial<MaintenanceStatus>): MaintenanceStatus => ({ active: true, action: 'restore_database', task: 'idle', progress: 0, log: [], error: null, ...patch });

describe('maintenance screen', () => {
  it('picks the view from the status and the viewer', () => {
    expect(viewOf(status({ task: 'restore' }), false)).toBe('progress');
    expect(viewOf(status({ task: 'rollback' }), true)).toBe('progress');
    expect(viewOf(status({ active: false, task: 'done' }), false)).toBe('done');
    expect(viewOf(status({ task: 'error' }), true)).toBe('failed');
    expect(viewOf(status({ action: 'start' }), true)).toBe('wizard');
    expect(viewOf(status({ action: 'start' }), false)).toBe('waiting');
    expect(viewOf(status({ active: false }), true)).toBe('ended');
  });

  it('overall progress only grows, across the steps and within them', () => {
    const steps: Array<Partial<MaintenanceStatus>> = [
      { task: 'backup', progress: 0 },
      { task: 'backup', progress: 1 },
      { task: 'restore', progress: 0, restorePoint: 'restore-point-x.sql' },
      { task: 'restore', progress: 0.5, restorePoint: 'restore-point-x.sql' },
      { task: 'migrations', progress: 0, restorePoint: 'restore-point-x.sql' },
      { task: 'health', progress: 1, restorePoint: 'restore-point-x.sql' },
      { task: 'done', progress: 0, active: false },
    ];
    const values = steps.map((s) => overallProgress(status(s)));
    expect(values).toEqual([...values].sort((a, b) => a - b));
    expect(values.at(-1)).toBe(1);
  });

  it('a staged restore has no restore-point step but a swap; the in-place one the other way round', () => {
    expect(stepsOf(status({ task: 'restore' }))).toEqual(['restore', 'swap', 'migrations', 'health']);
    expect(stepsOf(status({ task: 'restore', restorePoint: 'restore-point-x.sql' }))).toEqual(['backup', 'restore', 'migrations', 'health']);
    const staged = [
      { task: 'restore', progress: 0 },
      { task: 'restore', progress: 0.9 },
      { task: 'swap', progress: 0 },
      { task: 'migrations', progress: 0 },
      { task: 'health', progress: 0.5 },
    ] as Array<Partial<MaintenanceStatus>>;
    const values = staged.map((s) => overallProgress(status(s)));
    expect(values).toEqual([...values].sort((a, b) => a - b));
    expect(values[1]).toBeGreaterThan(0.7);
  });

  it('says the time left in words', () => {
    expect(timeLeft(null)).toBeNull();
    expect(timeLeft(42)).toBe('about 42 s left');
    expect(timeLeft(150)).toBe('about 3 min left');
  });
});
