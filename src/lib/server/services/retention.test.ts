import { describe, expect, it } from 'vitest';
import { routineBackupName } from '../../shared/backup-name';
import { keepGenerations } from '../../shared/retention-rules';
import { planRetention, selectForRetention, type RetentionFile } from './retention';

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

describe('planRetention (every kind of file)', () => {
  const now = new Date('2025-03-01T12:00:00Z');
  const file = (name: string, kind: RetentionFile['kind'], iso: string, modified = iso): RetentionFile => ({ name, kind, createdAt: new Date(iso), modifiedAt: new Date(modified) });
  const points = ['2025-02-01', '2025-02-10', '2025-02-20', '2025-02-25', '2025-02-28'].map((d, i) => file(`rp${i}`, 'restore-point', `${d}T00:00:00Z`));
  const rules = { database: { keepLastAmount: 14 }, restorePointsKeep: 3, uploadsKeepDays: 0 };

  it('keeps the last N restore points, and the newest even with N = 1 or when listed out of order', () => {
    expect(planRetention(points, rules, { now }).remove.map((r) => r.name).sort()).toEqual(['rp0', 'rp1']);
    expect(planRetention([...points].reverse(), { ...rules, restorePointsKeep: 1 }, { now }).remove.map((r) => r.name).sort()).toEqual(['rp0', 'rp1', 'rp2', 'rp3']);
  });

  it('keeps uploaded files forever with 0 days, else for N days after the last restore (or the upload)', () => {
    const uploads = [file('uploaded-old', 'uploaded', '2020-01-01T00:00:00Z', '2025-01-01T00:00:00Z'), file('uploaded-restored', 'uploaded', '2020-01-01T00:00:00Z', '2025-01-01T00:00:00Z'), file('uploaded-new', 'uploaded', '2020-01-01T00:00:00Z', '2025-02-20T00:00:00Z')];
    expect(planRetention(uploads, rules, { now }).remove).toEqual([]);
    const plan = planRetention(uploads, { ...rules, uploadsKeepDays: 30 }, { now, lastRestoredAt: { 'uploaded-restored': '2025-02-15T00:00:00Z' } });
    expect(plan.remove).toEqual([{ name: 'uploaded-old', reason: 'uploaded file not restored for more than 30 days' }]);
  });

  it('never removes a file in use (it is reported instead) nor the backup just made; other files are never touched', () => {
    const routine = ['2025-02-26', '2025-02-27', '2025-02-28'].map((d, i) => file(`r${i}`, 'routine', `${d}T02:00:00Z`));
    const plan = planRetention([...routine, file('notes.sql', 'other', '2000-01-01T00:00:00Z')], { ...rules, database: { keepLastAmount: 1 } }, { now, justMade: 'r0', usedBy: (name) => (name === 'r1' ? 'a download' : null) });
    expect(plan.remove).toEqual([]);
    expect(plan.inUse).toEqual([{ name: 'r1', usedBy: 'a download' }]);
  });
});

describe('keepGenerations (daily / weekly / monthly)', () => {
  // One backup a day at 02:00 UTC for 120 days, plus a second one on the last day.
  const start = Date.UTC(2025, 0, 1, 2);
  const daily = Array.from({ length: 120 }, (_, i) => ({ name: `d${i}`, createdAt: new Date(start + i * 86_400_000) }));
  const files = [...daily, { name: 'extra', createdAt: new Date(start + 119 * 86_400_000 + 3_600_000) }];

  it('keeps the newest of each of the last N days, weeks and months (periods overlap: 7/4/6 keeps 12 here)', () => {
    const kept = keepGenerations(files, { daily: 7, weekly: 4, monthly: 6 });
    // d0 is 2025-01-01 (a Wednesday); d119 is 2025-04-30, whose newest backup is "extra".
    const days = ['extra', 'd118', 'd117', 'd116', 'd115', 'd114', 'd113'];
    // ISO weeks end on Sundays: this week's newest is "extra", then 04-27 (d116, already a daily), 04-20, 04-13.
    const weeks = ['d109', 'd102'];
    // Months: April ("extra"), March 31, February 28, January 31; nothing older exists.
    const months = ['d89', 'd58', 'd30'];
    expect([...kept].sort()).toEqual([...days, ...weeks, ...months].sort());
  });

  it('always keeps the newest, and counts only periods that have a backup', () => {
    expect([...keepGenerations(files, { daily: 0, weekly: 0, monthly: 1 })]).toEqual(['extra']);
    expect(keepGenerations(daily.slice(0, 3), { daily: 7, weekly: 0, monthly: 0 }).size).toBe(3);
  });
});
