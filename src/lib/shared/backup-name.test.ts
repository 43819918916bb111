import { describe, expect, it } from 'vitest';
import {
  formatBackupTimestamp,
  isValidBackupName,
  parseBackupName,
  restorePointName,
  routineBackupName,
} from './backup-name';

const ROUTINE_NAME = /^immich-db-backup-\d{8}T\d{6}-v1\.1\.0-pg15\.\d+\.sql\.gz$/;

describe('backup names', () => {
  it('writes routine names in UTC, in the reference format', () => {
    // 23:30 on the 31st in UTC is already the 1st in UTC+2: the name must not depend on the server's zone.
    const date = new Date('2025-12-31T23:30:05.123Z');
    const name = routineBackupName(date, '1.1.0', '15.18');
    expect(name).toBe('immich-db-backup-20251231T233005-v1.1.0-pg15.18.sql.gz');
    expect(name).toMatch(ROUTINE_NAME);
    expect(formatBackupTimestamp(new Date('2026-01-02T03:04:05Z'))).toBe('20260102T030405');
    expect(restorePointName(date, '1.1.0', '15.18')).toBe('restore-point-immich-db-backup-20251231T233005-v1.1.0-pg15.18.sql.gz');
  });

  it('reads back what it writes', () => {
    const date = new Date('2025-07-29T11:40:18Z');
    expect(parseBackupName(routineBackupName(date, '1.1.0', '15.18'))).toEqual({ kind: 'routine', version: '1.1.0', postgresVersion: '15.18', createdAt: date });
    expect(parseBackupName(restorePointName(date, '1.0.0', '14.17'))).toEqual({ kind: 'restore-point', version: '1.0.0', postgresVersion: '14.17', createdAt: date });
  });

  it("reads the reference server's own names", () => {
    expect(parseBackupName('immich-db-backup-20250729T114018-v1.136.0-pg14.17.sql.gz')).toEqual({
      kind: 'routine',
      version: '1.136.0',
      postgresVersion: '14.17',
      createdAt: new Date('2025-07-29T11:40:18Z'),
    });
  });

  it('reads legacy epoch-millis names as routine backups of unknown version', () => {
    expect(parseBackupName('immich-db-backup-1753789218000.sql.gz')).toEqual({
      kind: 'routine',
      version: null,
      postgresVersion: null,
      createdAt: new Date(1753789218000),
    });
  });

  it('reads uploaded files, keeping what their own name says', () => {
    expect(parseBackupName('uploaded-immich-db-backup-20250729T114018-v1.0.0-pg15.2.sql.gz')).toEqual({
      kind: 'uploaded',
      version: '1.0.0',
      postgresVersion: '15.2',
      createdAt: new Date('2025-07-29T11:40:18Z'),
    });
    expect(parseBackupName('uploaded-my-dump.sql')).toEqual({ kind: 'uploaded', version: null, postgresVersion: null, createdAt: null });
  });

  it('reads other names: a version between "-v" and the next "-" when there is one', () => {
    expect(parseBackupName('dump.sql.gz')).toEqual({ kind: 'other', version: null, postgresVersion: null, createdAt: null });
    expect(parseBackupName('nightly-v1.2.3-pg16.4.sql')).toEqual({ kind: 'other', version: '1.2.3', postgresVersion: '16.4', createdAt: null });
    // An impossible date in a routine-looking name is not trusted.
    expect(parseBackupName('immich-db-backup-20251399T999999-v1.1.0-pg15.18.sql.gz').createdAt).toBeNull();
  });

  it.each([
    'immich-db-backup-20250729T114018-v1.136.0-pg14.17.sql.gz',
    'restore-point-immich-db-backup-20250729T114018-v1.1.0-pg15.18.sql.gz',
    'uploaded-dump.sql',
    'a.sql',
    'my_backup-2.sql.gz',
  ])('accepts %s', (name) => {
    expect(isValidBackupName(name)).toBe(true);
  });

  it.each(['../x.sql', 'a/b.sql.gz', '.sql', 'x.txt', 'x.sql.gz.tmp', '..sql', 'a..sql', 'x.sql ', ' x.sql', 'a\\b.sql', 'a\0.sql', '', 'x'.repeat(300) + '.sql'])(
    'refuses %j',
    (name) => {
      expect(isValidBackupName(name)).toBe(false);
    },
  );

  it('refuses what is not a string', () => {
    for (const value of [undefined, null, 42, ['a.sql'], { name: 'a.sql' }]) expect(isValidBackupName(value)).toBe(false);
  });
});
