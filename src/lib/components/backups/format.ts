import type { BackupFile } from '../../shared/types';

/** Display helpers for backup lists. Dates are the browser's local time: render them on the client. */

export { formatBytes, relativeTime } from '../../shared/format';

export interface BackupGroup {
  /** yyyy-mm-dd of the local date: a stable key. */
  key: string;
  heading: string;
  backups: BackupFile[];
}

function localKey(date: Date): string {
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, '0')}-${String(date.getDate()).padStart(2, '0')}`;
}

/** Newest first, grouped under local-date headings ("Today", "Yesterday", "Monday, 3 March 2025"). */
export function groupByDate(backups: BackupFile[], now: Date = new Date(), locale?: string): BackupGroup[] {
  const today = localKey(now);
  const yesterday = localKey(new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1));
  const groups = new Map<string, BackupGroup>();
  const sorted = [...backups].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || a.filename.localeCompare(b.filename));
  for (const backup of sorted) {
    const date = new Date(backup.createdAt);
    const key = localKey(date);
    let group = groups.get(key);
    if (!group) {
      const long = date.toLocaleDateString(locale, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
      const heading = key === today ? `Today, ${long}` : key === yesterday ? `Yesterday, ${long}` : long;
      group = { key, heading, backups: [] };
      groups.set(key, group);
    }
    group.backups.push(backup);
  }
  return [...groups.values()];
}

export function timeOf(date: string, locale?: string): string {
  return new Date(date).toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' });
}
