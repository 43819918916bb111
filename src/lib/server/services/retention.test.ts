import { describe, expect, it } from 'vitest';
import { routineBackupName } from '../../shared/backup-name';
import { selectForRetention } from './retention';

const at = (iso: string) => routineBackupName(new Date(iso), '1.1.0', '15.18');
const routine = ['2025-01-01T02:00:00Z', '2025-01-02T02:00:00Z', '2025-01-03T02:00:00Z', '2025-01-04T02:00:00Z', '2025-01-05T02:00:00Z'].map(at);
const others = [
  `restore-point-${at('2024-01-01T00:00:00Z')}`,
  `uploaded-${at('2024-01-01T00:00:00Z')}`,
  'uploaded-my-dump.sql.gz',
  'hand-made.sql',
  'immich-db-backup-notes.sql.gz',
  '.immich',
  `uploaded-${at('2024-01-01T00:00:00Z')}.tmp`,
];

describe('selectForRetention', () => {
  it('keeps the newest N routine backups, counting the one just made, and nothing else is touched', () => {
    const justMade = routine[4];
    const doomed = selectForRetention([...others, ...routine], 3, justMade);
    expect(doomed.sort()).toEqual([routine[0], routine[1]].sort());
  });

  it('never removes the backup just made, even when its clock looks older than the others', () => {
    const justMade = routine[0];
    const doomed = selectForRetention(routine, 2, justMade);
    expect(doomed).not.toContain(justMade);
    expect(doomed.sort()).toEqual([routine[1], routine[2], routine[3]].sort());
  });

  it('keeps N when the file just made is not among the entries (e.g. a restore point)', () => {
    expect(selectForRetention(routine, 2, 'restore-point-x.sql.gz').sort()).toEqual(routine.slice(0, 3).sort());
  });

  it('removes stale .tmp files of failed routine backups but not the one in progress or an upload in progress', () => {
    const stale = `${routine[0]}.tmp`;
    const inProgress = `${routine[4]}.tmp`;
    const doomed = selectForRetention([stale, inProgress, ...others], 14, routine[4]);
    expect(doomed).toEqual([stale]);
  });

  it('treats the older epoch-millis name style as routine', () => {
    const legacy = 'immich-db-backup-1700000000000.sql.gz';
    expect(selectForRetention([legacy, ...routine], 5, routine[4])).toEqual([legacy]);
  });
});
