import { parseBackupName, type BackupKind } from '../../shared/backup-name';
import { keepLast, keepRoutine } from '../../shared/retention-rules';
import type { BackupSettings } from '../../shared/types';

/**
 * Which files retention removes: routine backups beyond the newest `keep`, and stale .tmp
 * files of failed backups. Restore points, uploaded and other files are never touched, nor
 * the backup just made (even if its clock looks older).
 */
export function selectForRetention(entries: string[], keep: number, justMade: string): string[] {
  const routine = entries
    .map((name) => ({ name, info: parseBackupName(name) }))
    .filter(({ name, info }) => info.kind === 'routine' && name !== justMade && !name.endsWith('.tmp'))
    .sort((a, b) => (b.info.createdAt?.getTime() ?? 0) - (a.info.createdAt?.getTime() ?? 0) || b.name.localeCompare(a.name));
  // The backup just made counts toward `keep` (when it is a routine one), so N backups remain, not N+1.
  const justMadeIsRoutine = entries.includes(justMade) && parseBackupName(justMade).kind === 'routine';
  const keepOthers = Math.max(0, keep - (justMadeIsRoutine ? 1 : 0));
  return [...routine.slice(keepOthers).map(({ name }) => name), ...staleTemporaryFiles(entries, justMade)];
}

/** .tmp files of failed routine backups (not the one being written now). */
export function staleTemporaryFiles(entries: string[], justMade: string | null): string[] {
  return entries.filter((name) => /^immich-db-backup-.*\.sql\.gz\.tmp$/.test(name) && name !== `${justMade}.tmp`);
}

export interface RetentionFile {
  name: string;
  kind: BackupKind;
  /** From the name when it says, else the file's modification time. */
  createdAt: Date;
  /** When the file was written here (an upload's arrival). */
  modifiedAt: Date;
}

export interface RetentionRules {
  database: Pick<BackupSettings, 'keepLastAmount' | 'generations'>;
  restorePointsKeep: number;
  /** 0 keeps uploaded files until deleted by hand. */
  uploadsKeepDays: number;
}

export interface RetentionContext {
  now: Date;
  /** Never removed (the backup just made). */
  justMade?: string | null;
  /** ISO dates of the last restore of each file that was restored. */
  lastRestoredAt?: Record<string, string>;
  /** What uses the file right now (a restore, download, drill, off-site copy), or null. */
  usedBy?: (name: string) => string | null;
}

export interface RetentionPlan {
  remove: Array<{ name: string; reason: string }>;
  /** Would have been removed, but something uses it: tried again next time. */
  inUse: Array<{ name: string; usedBy: string }>;
}

const DAY = 86_400_000;

/**
 * Retention for every kind of file. Routine backups: the last N or daily/weekly/monthly
 * generations. Restore points: the last N, the newest always. Uploaded files: kept until
 * deleted by hand, or `uploadsKeepDays` days after their last restore (or their upload, if
 * never restored). Other files are never touched, nor a file in use, nor `justMade`.
 */
export function planRetention(files: RetentionFile[], rules: RetentionRules, context: RetentionContext): RetentionPlan {
  const candidates: Array<{ name: string; reason: string }> = [];
  const routine = files.filter((file) => file.kind === 'routine');
  const keptRoutine = keepRoutine(routine, rules.database);
  const how = rules.database.generations
    ? `keep ${rules.database.generations.daily} daily, ${rules.database.generations.weekly} weekly, ${rules.database.generations.monthly} monthly`
    : `keep the last ${rules.database.keepLastAmount}`;
  for (const file of routine) if (!keptRoutine.has(file.name)) candidates.push({ name: file.name, reason: `routine backup beyond the rule (${how})` });

  const restorePoints = files.filter((file) => file.kind === 'restore-point');
  const keptPoints = keepLast(restorePoints, rules.restorePointsKeep);
  for (const file of restorePoints) if (!keptPoints.has(file.name)) candidates.push({ name: file.name, reason: `restore point beyond the last ${rules.restorePointsKeep}` });

  if (rules.uploadsKeepDays > 0) {
    for (const file of files.filter((f) => f.kind === 'uploaded')) {
      const restored = context.lastRestoredAt?.[file.name];
      const since = Math.max(file.modifiedAt.getTime(), restored ? new Date(restored).getTime() : 0);
      if (context.now.getTime() - since > rules.uploadsKeepDays * DAY) {
        candidates.push({ name: file.name, reason: `uploaded file not restored for more than ${rules.uploadsKeepDays} days` });
      }
    }
  }

  const plan: RetentionPlan = { remove: [], inUse: [] };
  for (const candidate of candidates) {
    if (candidate.name === context.justMade) continue;
    const usedBy = context.usedBy?.(candidate.name) ?? null;
    if (usedBy) plan.inUse.push({ name: candidate.name, usedBy });
    else plan.remove.push(candidate);
  }
  return plan;
}
