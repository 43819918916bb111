import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { clientToolsFor, findPgBinDir, PgBinariesError, UnsupportedPostgresVersionError } from './pg-binaries';

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
});
