import type { RetentionGenerations } from './types';

/** Browser-safe retention rules: the Settings preview and the server's retention use the same ones. */

export interface Dated {
  name: string;
  createdAt: Date;
}

const newestFirst = (a: Dated, b: Dated) => b.createdAt.getTime() - a.createdAt.getTime() || b.name.localeCompare(a.name);

const day = (date: Date) => date.toISOString().slice(0, 10);
const month = (date: Date) => date.toISOString().slice(0, 7);
/** ISO 8601 week (Monday first), in UTC like backup names: "2025-W03". */
function week(date: Date): string {
  const d = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
  const weekday = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  return `${d.getUTCFullYear()}-W${String(Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7)).padStart(2, '0')}`;
}

/**
 * Daily / weekly / monthly generations: the newest backup of each of the `daily` most recent
 * days that have one, of each of the `weekly` most recent weeks, and of each of the `monthly`
 * most recent months (days, weeks and months in UTC, as backup names are). The newest backup
 * is always kept. Returns the names kept.
 */
export function keepGenerations(files: Dated[], generations: RetentionGenerations): Set<string> {
  const sorted = [...files].sort(newestFirst);
  const kept = new Set<string>();
  if (sorted.length) kept.add(sorted[0].name);
  for (const [count, period] of [
    [generations.daily, day],
    [generations.weekly, week],
    [generations.monthly, month],
  ] as const) {
    const seen = new Set<string>();
    for (const file of sorted) {
      if (seen.size >= count) break;
      const key = period(file.createdAt);
      if (seen.has(key)) continue;
      seen.add(key);
      kept.add(file.name);
    }
  }
  return kept;
}

/** The newest `keep` (at least the newest one). */
export function keepLast(files: Dated[], keep: number): Set<string> {
  return new Set([...files].sort(newestFirst).slice(0, Math.max(1, keep)).map((file) => file.name));
}

/** Routine backups kept by the backup settings: generations when set, else the last N. */
export function keepRoutine(files: Dated[], settings: { keepLastAmount: number; generations?: RetentionGenerations | null }): Set<string> {
  return settings.generations ? keepGenerations(files, settings.generations) : keepLast(files, settings.keepLastAmount);
}
