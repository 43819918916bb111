import { Cron } from 'croner';
import { DEFAULT_NOTIFICATIONS, DEFAULT_OFFSITE, DEFAULT_RESTORE_POINTS, DEFAULT_UPLOADS, DEFAULT_DRILL, validateGenerations } from './settings-rules';
import type { BackupSettings, SystemConfig } from './types';

/** Browser-safe schedule rules, shared by the settings page (preview) and the server (validation). */

export const DEFAULT_BACKUP_SETTINGS: BackupSettings = { enabled: true, cronExpression: '0 02 * * *', keepLastAmount: 14 };

export const DEFAULT_SYSTEM_CONFIG: SystemConfig = {
  backup: { database: DEFAULT_BACKUP_SETTINGS, offsite: DEFAULT_OFFSITE, restorePoints: DEFAULT_RESTORE_POINTS, uploads: DEFAULT_UPLOADS, drill: DEFAULT_DRILL },
  notifications: DEFAULT_NOTIFICATIONS,
};

/** 5 fields (minute precision) or 6 (with seconds first), as croner reads them. */
const MODE = '5-or-6-parts' as const;

/** Paused: parsing only, never a timer. Without a time zone, the local one (the server's, on the server). */
function parse(expression: string, timezone?: string): Cron {
  return new Cron(expression.trim(), { paused: true, mode: MODE, timezone });
}

/** Why an expression cannot be used, or null when it can. */
export function cronError(expression: unknown): string | null {
  if (typeof expression !== 'string' || expression.trim() === '') return 'Enter a cron expression, e.g. "0 02 * * *" for every day at 2:00 AM.';
  try {
    const cron = parse(expression);
    if (!cron.nextRun()) return `The cron expression "${expression}" never runs.`;
    return null;
  } catch (error) {
    const detail = (error as Error).message.replace(/^CronPattern:\s*/, '');
    return `Invalid cron expression "${expression}": ${detail}`;
  }
}

/**
 * The next `count` run times after `from`, or [] for an invalid expression. `timezone` is the
 * zone the schedule runs in (the server's): the browser passes it to preview the real times.
 */
export function nextRuns(expression: string, count: number, from: Date = new Date(), timezone?: string): Date[] {
  try {
    return parse(expression, timezone).nextRuns(count, from);
  } catch {
    return [];
  }
}

/** The most recent `count` times the schedule fired before `from`, newest first. */
export function previousRuns(expression: string, count: number, from: Date = new Date()): Date[] {
  try {
    return parse(expression).previousRuns(count, from);
  } catch {
    return [];
  }
}

/**
 * Checks a submitted backup schedule. The cron expression matters only when backups are
 * enabled (as the reference does); keepLastAmount is always a whole number of at least 1;
 * generations, when given, replace keepLastAmount for routine backups.
 * Returns the settings, or the list of problems.
 */
export function validateBackupSettings(input: unknown): { settings: BackupSettings } | { errors: string[] } {
  const value = (input && typeof input === 'object' ? input : {}) as Record<string, unknown>;
  const errors: string[] = [];
  if (typeof value.enabled !== 'boolean') errors.push('"enabled" must be true or false.');
  const cronExpression = typeof value.cronExpression === 'string' ? value.cronExpression.trim() : value.cronExpression;
  if (value.enabled !== false) {
    const problem = cronError(cronExpression);
    if (problem) errors.push(problem);
  } else if (typeof cronExpression !== 'string') {
    errors.push('"cronExpression" must be a string.');
  }
  const keep = value.keepLastAmount;
  if (typeof keep !== 'number' || !Number.isSafeInteger(keep) || keep < 1) {
    errors.push(`Keep last amount must be a whole number of at least 1 (got ${JSON.stringify(keep ?? null)}).`);
  }
  const generations = validateGenerations(value.generations);
  if ('problems' in generations) errors.push(...generations.problems.map((problem) => problem.message));
  if (errors.length) return { errors };
  const settings: BackupSettings = { enabled: value.enabled as boolean, cronExpression: cronExpression as string, keepLastAmount: keep as number };
  // Only present when on, so a config without generations reads exactly as before.
  if ('generations' in generations && generations.generations) settings.generations = generations.generations;
  return { settings };
}
