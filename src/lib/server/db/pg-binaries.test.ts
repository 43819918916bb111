import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { chmodSync, writeFileSync } from 'node:fs';
import { choosePsql, clientToolsFor, findPgBinDir, PgBinariesError, restorePsqlFor, supportsRestrict, UnsupportedPostgresVersionError } from './pg-binaries';

describe('PostgreSQL binaries', () => {
  const path = process.env.PATH;
  afterEach(() => {
    process.env.PATH = path;
  });

  it('stops with the install command when no binaries exist anywhere it looks', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'no-pg-'));
    process.env.PATH = empty;
    try {
      // major 13 has no Debian folder here, and PG_BIN_DIR and PATH are empty folders.
      await expect(findPgBinDir(['initdb', 'pg_ctl'], { pgBinDir: empty, major: 13 })).rejects.toThrow(PgBinariesError);
      await expect(findPgBinDir(['no-such-tool'], { pgBinDir: empty })).rejects.toThrow(/apt-get install postgresql/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('refuses server versions outside 14 to 18, saying which are supported', async () => {
    await expect(clientToolsFor('13.4')).rejects.toThrow(UnsupportedPostgresVersionError);
    await expect(clientToolsFor('19.0')).rejects.toThrow(/supports PostgreSQL 14, 15, 16, 17, 18/);
  });

  it('finds the client tools matching the server major', async () => {
    const found = await findPgBinDir(['pg_dump', 'psql']);
    const tools = await clientToolsFor(`${found.major}.1`);
    expect(tools.major).toBe(found.major);
    expect(tools.pgDump).toMatch(/pg_dump$/);
  });

  it('knows which psql releases have restricted mode (\\restrict)', () => {
    for (const version of ['13.22', '14.19', '15.14', '15.18', '16.10', '17.6', '18.0', '18', '19devel']) expect(supportsRestrict(version), version).toBe(true);
    for (const version of ['13.21', '14.18', '15.13', '16.9', '17.5', '12.22', 'x']) expect(supportsRestrict(version), version).toBe(false);
  });

  it('restores with a psql that has \\restrict: the server major when it has it, else a newer one, else none', () => {
    const old = { path: '/old/psql', version: '15.13' };
    const fixed = { path: '/fixed/psql', version: '15.14' };
    const newer = { path: '/new/psql', version: '17.6' };
    const older = { path: '/older/psql', version: '14.19' };
    expect(choosePsql([newer, fixed, old], 15)).toBe('/fixed/psql');
    expect(choosePsql([old, newer], 15)).toBe('/new/psql');
    expect(choosePsql([old, older], 15)).toBeNull();
  });

  it('refuses to restore with an old psql, naming the fix', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'old-psql-'));
    process.env.PATH = dir;
    try {
      writeFileSync(join(dir, 'psql'), '#!/bin/sh\necho "psql (PostgreSQL) 16.9"\n');
      chmodSync(join(dir, 'psql'), 0o755);
      // No PostgreSQL 16 or 17 client is installed here, and PATH holds only the old psql.
      await expect(restorePsqlFor('16.4', dir)).rejects.toThrow(/restricted mode.*psql 16\.9.*apt-get update && apt-get install postgresql-client-16/s);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
