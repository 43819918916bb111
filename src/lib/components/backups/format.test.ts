import { describe, expect, it } from 'vitest';
import type { BackupFile } from '../../shared/types';
import { formatBytes, groupByDate, relativeTime } from './format';

const backup = (filename: string, createdAt: Date): BackupFile => ({ filename, createdAt: createdAt.toISOString(), filesize: 1, version: null, versionSource: null, postgresVersion: null, kind: 'routine' });

describe('backup list formatting', () => {
  it('says how long ago, in words', () => {
    const now = new Date(2025, 2, 3, 15, 0, 0);
    expect(relativeTime(new Date(2025, 2, 3, 12, 0, 0), now, 'en')).toBe('3 hours ago');
    expect(relativeTime(new Date(2025, 2, 3, 14, 59, 30), now, 'en')).toBe('just now');
    expect(relativeTime(new Date(2025, 2, 2, 15, 0, 0), now, 'en')).toBe('yesterday');
    expect(relativeTime(new Date(2025, 1, 3, 15, 0, 0), now, 'en')).toBe('4 weeks ago');
  });

  it('shows sizes in binary units', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(250 * 1024 * 1024)).toBe('250 MiB');
  });

  it('groups by local date, newest first, with today and yesterday named', () => {
    const now = new Date(2025, 2, 3, 15, 0, 0);
    const groups = groupByDate(
      [
        backup('a', new Date(2025, 2, 1, 2, 0, 0)),
        backup('b', new Date(2025, 2, 3, 2, 0, 0)),
        backup('c', new Date(2025, 2, 2, 23, 59, 0)),
        backup('d', new Date(2025, 2, 3, 14, 0, 0)),
      ],
      now,
      'en-GB',
    );
    expect(groups.map((g) => g.key)).toEqual(['2025-03-03', '2025-03-02', '2025-03-01']);
    expect(groups[0].backups.map((b) => b.filename)).toEqual(['d', 'b']);
    expect(groups[0].heading).toEqual(expect.stringMatching(/^Today, Monday,? 3 March 2025$/));
    expect(groups[1].heading).toMatch(/^Yesterday, Sunday,? 2 March 2025/);
    expect(groups[2].heading).toMatch(/^Saturday,? 1 March 2025$/);
  });
});
