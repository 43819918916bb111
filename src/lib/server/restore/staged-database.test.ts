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
  hasReplication: false,
  superuser: false,
  createDb: true,
  ownerMember: true,
  adminDatabase: 'postgres',
  serverMajor: 15,
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
    ['replication slots or subscriptions', { hasReplication: true }, /replication/],
    ['PostgreSQL 14 and no superuser', { serverMajor: 14 }, /before PostgreSQL 15/],
  ] as const)('restores in place with %s', (_name, patch, reason) => {
    expect(cannotStage({ ...facts, ...patch }, dump, 'immich')).toMatch(reason);
  });

  it('never stages a database whose name is one a staged restore makes: the cleanup could drop it', () => {
    for (const name of ['immich__lifeboat_replaced', 'immich__lifeboat_restoring', 'immich__lifeboat_failed', `${'d'.repeat(40)}__lifeboat_replaced`]) {
      expect(cannotStage(facts, dump, name)).toMatch(/looks like one a staged restore makes/);
    }
  });

  it('stages on PostgreSQL 14 as a superuser', () => {
    expect(cannotStage({ ...facts, serverMajor: 14, superuser: true }, dump, 'immich')).toBeNull();
  });

  it('stages cluster dumps too (their role settings are left out), and says so when the database is missing', () => {
    expect(cannotStage(facts, { kind: 'cluster' } as ValidatedDump, 'immich')).toBeNull();
    expect(cannotStage(null, dump, 'immich')).toMatch(/"immich" was not found/);
  });
});

describe('stagingNames', () => {
  it('derives fixed names from the database, within the 63-byte identifier limit', () => {
    expect(stagingNames('immich')).toEqual({ staged: 'immich__lifeboat_restoring', replaced: 'immich__lifeboat_replaced', failed: 'immich__lifeboat_failed' });
    const long = stagingNames('é'.repeat(40));
    for (const name of Object.values(long)) {
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
      expect(name).toMatch(/^(é)+_[0-9a-f]{8}__lifeboat_/);
      expect(name).not.toBe('é'.repeat(40));
    }
    // Two long names cut alike still get their own staging names.
    expect(stagingNames(`${'x'.repeat(50)}_a`).staged).not.toBe(stagingNames(`${'x'.repeat(50)}_b`).staged);
  });
});
