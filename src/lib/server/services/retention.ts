import { parseBackupName } from '../../shared/backup-name';

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
  const stale = entries.filter((name) => /^immich-db-backup-.*\.sql\.gz\.tmp$/.test(name) && name !== `${justMade}.tmp`);
  return [...routine.slice(keepOthers).map(({ name }) => name), ...stale];
}
