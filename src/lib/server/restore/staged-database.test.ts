import { describe, expect, it } from 'vitest';
import type { StagingFacts } from '../repositories/restore.repository';
import { cannotStage, stagingNames } from './staged-database';
import type { ValidatedDump } from './validate-backup';

const facts: StagingFacts = {
  owner: 'immich',
  encoding: 'UTF8',
  collate: 'C',
  ctype: 'C',
  connectionLimit: -1,
  tablespace: 'pg_default',
  localeProvider: 'c',
  defaultPrivileges: true,
  isTemplate: false,
  hasSettings: false,
  hasComment: false,
  hasSecurityLabel: false,
  superuser: false,
  createDb: true,
  ownerMember: true,
  adminDatabase: 'postgres',
};
const dump = { kind: 'database' } as ValidatedDump;

describe('cannotStage', () => {
  it('stages a database dump when the role may create databases and owns this one', () => {
    expect(cannotStage(facts, dump, 'immich')).toBeNull();
    expect(cannotStage({ ...facts, createDb: false, ownerMember: false, superuser: true }, dump, 'immich')).toBeNull();
  });

  it.each([
    ['no CREATEDB', { createDb: false }, /may not create databases/],
    ['not the owner', { ownerMember: false }, /does not own/],
    ['an ICU locale', { localeProvider: 'i' }, /ICU or builtin locale/],
    ['database settings', { hasSettings: true }, /settings/],
    ['granted privileges', { defaultPrivileges: false }, /privileges/],
    ['a comment', { hasComment: true }, /comment/],
    ['the admin database itself', { adminDatabase: 'immich' }, /system database/],
  ] as const)('restores in place with %s', (_name, patch, reason) => {
    expect(cannotStage({ ...facts, ...patch }, dump, 'immich')).toMatch(reason);
  });

  it('restores cluster dumps in place, and says so when the database is missing', () => {
    expect(cannotStage(facts, { kind: 'cluster' } as ValidatedDump, 'immich')).toMatch(/cluster dump/);
    expect(cannotStage(null, dump, 'immich')).toMatch(/"immich" was not found/);
  });
});

describe('stagingNames', () => {
  it('derives fixed names from the database, within the 63-byte identifier limit', () => {
    expect(stagingNames('immich')).toEqual({ staged: 'immich__lifeboat_restoring', replaced: 'immich__lifeboat_replaced', failed: 'immich__lifeboat_failed' });
    const long = stagingNames('é'.repeat(40));
    for (const name of Object.values(long)) {
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
      expect(name).toMatch(/^(é)+__lifeboat_/);
    }
  });
});
