import { availableParallelism } from 'node:os';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Lifeboat } from '../src/lib/server/app';
import { ConfigError, loadConfig } from '../src/lib/server/config';
import { findIgzip } from '../src/lib/server/process/igzip';
import { StorageLayoutError } from '../src/lib/server/services/storage.service';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toEqual({
      uploadLocation: resolve('./data/library'),
      database: { kind: 'embedded', dataLocation: resolve('./data/postgres'), database: 'immich' },
      pgBinDir: undefined,
      port: 2283,
      host: '0.0.0.0',
      uploadMaxBytes: 20480 * 1024 * 1024,
      childTimeoutMs: 360 * 60 * 1000,
      restoreAllowPrivileged: false,
      restoreJobs: Math.max(1, Math.min(8, availableParallelism() - 1)),
      keepReplacedDatabase: false,
      igzip: findIgzip('auto'),
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      UPLOAD_LOCATION: '/srv/photos',
      DB_DATA_LOCATION: '/srv/pg',
      DB_DATABASE_NAME: 'photos',
      PG_BIN_DIR: '/opt/pg/bin',
      PORT: '8080',
      HOST: '127.0.0.1',
      UPLOAD_MAX_SIZE_MB: '10',
      BACKUP_TIMEOUT_MINUTES: '5',
      RESTORE_ALLOW_PRIVILEGED: 'true',
      RESTORE_JOBS: '3',
      RESTORE_KEEP_REPLACED_DATABASE: 'true',
      BACKUP_COMPRESSOR: 'zlib',
    });
    expect(config).toEqual({
      uploadLocation: '/srv/photos',
      database: { kind: 'embedded', dataLocation: '/srv/pg', database: 'photos' },
      pgBinDir: '/opt/pg/bin',
      port: 8080,
      host: '127.0.0.1',
      uploadMaxBytes: 10 * 1024 * 1024,
      childTimeoutMs: 5 * 60 * 1000,
      restoreAllowPrivileged: true,
      restoreJobs: 3,
      keepReplacedDatabase: true,
      igzip: null,
    });
  });

  it('takes an external database from DB_URL, with a unix socket folder as ?host=', () => {
    expect(loadConfig({ DB_URL: 'postgresql://immich:s%40cret@db.example:6543/library' }).database).toEqual({
      kind: 'external',
      host: 'db.example',
      port: 6543,
      user: 'immich',
      password: 's@cret',
      database: 'library',
    });
    expect(loadConfig({ DB_URL: 'postgres:///immich?host=/run/postgresql', DB_DATABASE_NAME: 'other' }).database).toEqual({
      kind: 'external',
      host: '/run/postgresql',
      port: 5432,
      user: 'postgres',
      password: undefined,
      database: 'immich',
    });
  });

  it('takes an external database field by field', () => {
    expect(loadConfig({ DB_HOSTNAME: 'db', DB_PORT: '5433', DB_USERNAME: 'u', DB_PASSWORD: 'p', DB_DATABASE_NAME: 'd' }).database).toEqual({
      kind: 'external',
      host: 'db',
      port: 5433,
      user: 'u',
      password: 'p',
      database: 'd',
    });
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT'],
    [{ PORT: '0' }, 'PORT'],
    [{ PORT: '65536' }, 'PORT'],
    [{ PORT: '80.5' }, 'PORT'],
    [{ DB_PORT: '99999' }, 'DB_PORT'],
    [{ DB_HOSTNAME: 'db', DB_PORT: 'five' }, 'DB_PORT'],
    [{ DB_URL: 'nonsense' }, 'DB_URL'],
    [{ DB_URL: 'mysql://root@db/immich' }, 'DB_URL'],
    [{ DB_URL: 'postgresql://u@db:0/immich' }, 'DB_URL'],
    [{ DB_URL: 'postgresql://u@db/im"mich' }, 'DB_URL'],
    [{ DB_DATABASE_NAME: 'imm"ich' }, 'DB_DATABASE_NAME'],
    [{ DB_DATABASE_NAME: "x'; DROP DATABASE postgres; --" }, 'DB_DATABASE_NAME'],
    [{ DB_DATABASE_NAME: '1abc' }, 'DB_DATABASE_NAME'],
    [{ UPLOAD_MAX_SIZE_MB: '0' }, 'UPLOAD_MAX_SIZE_MB'],
    [{ UPLOAD_MAX_SIZE_MB: '-5' }, 'UPLOAD_MAX_SIZE_MB'],
    [{ UPLOAD_MAX_SIZE_MB: 'lots' }, 'UPLOAD_MAX_SIZE_MB'],
    [{ BACKUP_TIMEOUT_MINUTES: '1.5' }, 'BACKUP_TIMEOUT_MINUTES'],
    [{ UPLOAD_LOCATION: '   ' }, 'UPLOAD_LOCATION'],
    [{ DB_DATA_LOCATION: ' ' }, 'DB_DATA_LOCATION'],
    [{ RESTORE_ALLOW_PRIVILEGED: 'maybe' }, 'RESTORE_ALLOW_PRIVILEGED'],
  ])('%j is refused with an error naming %s and the fix', (env, variable) => {
    const error = configError(env as Record<string, string>);
    expect(error.variable).toBe(variable);
    expect(error.message).toContain(`Invalid configuration: ${variable} `);
    // The message says what to do, not only what is wrong.
    expect(error.message).toMatch(/\. (Set|Use) /);
  });

  it('never echoes a DB_URL that might hold a password', () => {
    const error = configError({ DB_URL: 'postgresql//admin:hunter2@db/immich' });
    expect(error.message).not.toContain('hunter2');
  });
});

describe('Lifeboat.start with an UPLOAD_LOCATION that cannot be written', () => {
  const root = mkdtempSync(join(tmpdir(), 'lifeboat-config-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  // Root ignores permission bits, so "not writable" is made with a regular file where a folder must be.
  it('refuses to start when UPLOAD_LOCATION lies under a regular file', async () => {
    const file = join(root, 'not-a-folder');
    writeFileSync(file, 'x');
    const config = loadConfig({ UPLOAD_LOCATION: join(file, 'library'), DB_DATA_LOCATION: join(root, 'never-used') });
    const start = Lifeboat.start(config, { log: () => undefined });
    await expect(start).rejects.toBeInstanceOf(StorageLayoutError);
    await expect(start).rejects.toThrow(/UPLOAD_LOCATION \(.*not-a-folder\/library\) cannot be created: .*ENOTDIR.*Set UPLOAD_LOCATION to a writable folder/);
  });

  it('refuses to start when one of its folders cannot be made', async () => {
    const library = join(root, 'library');
    mkdirSync(library);
    writeFileSync(join(library, 'thumbs'), 'a file where the thumbs folder belongs');
    const config = loadConfig({ UPLOAD_LOCATION: library, DB_DATA_LOCATION: join(root, 'never-used') });
    await expect(Lifeboat.start(config, { log: () => undefined })).rejects.toThrow(/UPLOAD_LOCATION is not writable: cannot create .*library\/thumbs/);
  });
});
