import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { findIgzip } from './process/igzip';

/** Where the instance database lives: a cluster the app runs itself, or a server the admin gave us. */
export type DatabaseConfig =
  | { kind: 'embedded'; dataLocation: string; database: string }
  | {
      kind: 'external';
      host: string;
      port: number;
      user: string;
      password: string | undefined;
      database: string;
    };

export interface Config {
  uploadLocation: string;
  database: DatabaseConfig;
  pgBinDir: string | undefined;
  port: number;
  host: string;
  /** Largest backup file accepted by the upload route. */
  uploadMaxBytes: number;
  /** A pg_dump or psql child running longer than this is killed as hung. */
  childTimeoutMs: number;
  /** Lets a restore run a dump as a privileged role when no unprivileged one can be had (README, "Security model"). */
  restoreAllowPrivileged: boolean;
  /** Connections a staged restore loads on at once (1: one psql, as the manual recipe). */
  restoreJobs: number;
  /** Keep the database a staged restore replaced (renamed) after its restore-point file is written, until the next restore; else it is dropped then. */
  keepReplacedDatabase: boolean;
  /** igzip's path when backups are compressed with it (`BACKUP_COMPRESSOR`, default: igzip when installed), else null: zlib. */
  igzip: string | null;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
    fix: string,
  ) {
    super(`Invalid configuration: ${variable} ${problem}. ${fix}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function portOf(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new ConfigError(name, `is "${raw}", not a port number`, `Set ${name} to a whole number between 1 and 65535.`);
  }
  return value;
}

function positiveIntOf(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(name, `is "${raw}", not a positive whole number`, `Set ${name} to a whole number of at least 1, or leave it unset for the default.`);
  }
  return value;
}

function booleanOf(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['true', '1', 'yes'].includes(raw)) return true;
  if (['false', '0', 'no'].includes(raw)) return false;
  throw new ConfigError(name, `is "${env[name]}", not true or false`, `Set ${name} to true or false, or leave it unset (${fallback}).`);
}

function pathOf(env: Env, name: string, fallback: string): string {
  const raw = env[name];
  if (raw !== undefined && raw.trim() === '' && raw !== '') {
    throw new ConfigError(name, 'is blank', `Set ${name} to a folder path, or leave it unset for the default (${fallback}).`);
  }
  return resolve(raw || fallback);
}

const DATABASE_NAME = /^[A-Za-z_][\w$-]{0,62}$/;

function databaseOf(env: Env): DatabaseConfig {
  const name = env.DB_DATABASE_NAME || 'immich';
  if (!DATABASE_NAME.test(name)) {
    throw new ConfigError('DB_DATABASE_NAME', `is "${name}", not a usable database name`, 'Use letters, digits and underscores, starting with a letter.');
  }
  // Checked even when unused (no DB_HOSTNAME), so a typo is found before it matters.
  const port = portOf(env, 'DB_PORT', 5432);
  if (env.DB_URL) {
    let url: URL;
    try {
      url = new URL(env.DB_URL);
    } catch {
      throw new ConfigError('DB_URL', 'is not a valid URL', 'Use the form postgresql://user:password@host:5432/immich.');
    }
    if (url.protocol !== 'postgresql:' && url.protocol !== 'postgres:') {
      throw new ConfigError('DB_URL', `has the scheme "${url.protocol}"`, 'Use the form postgresql://user:password@host:5432/immich.');
    }
    // A unix socket folder may be given as ?host=/path, as libpq allows.
    const host = url.searchParams.get('host') || decodeURIComponent(url.hostname) || 'localhost';
    const urlPort = url.port ? Number(url.port) : 5432;
    if (!Number.isInteger(urlPort) || urlPort < 1 || urlPort > 65535) {
      throw new ConfigError('DB_URL', `has the port "${url.port}"`, 'Use a port between 1 and 65535, e.g. postgresql://user:password@host:5432/immich.');
    }
    const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || name;
    if (!DATABASE_NAME.test(database)) {
      throw new ConfigError('DB_URL', `names the database "${database}", not a usable database name`, 'Use letters, digits and underscores, starting with a letter.');
    }
    return {
      kind: 'external',
      host,
      port: urlPort,
      user: decodeURIComponent(url.username) || 'postgres',
      password: url.password ? decodeURIComponent(url.password) : undefined,
      database,
    };
  }
  if (env.DB_HOSTNAME) {
    return {
      kind: 'external',
      host: env.DB_HOSTNAME,
      port,
      user: env.DB_USERNAME || 'postgres',
      password: env.DB_PASSWORD || undefined,
      database: name,
    };
  }
  return { kind: 'embedded', dataLocation: pathOf(env, 'DB_DATA_LOCATION', './data/postgres'), database: name };
}

/** Reads and validates the environment once; every error names the variable and the fix. */
/**
 * One core goes to reading the dump (gunzip, the restore filter, psql), the others load tables.
 * On two cores (bench:restore, 1.1 GB) one connection loads in ~15.6 s where two take ~20 s:
 * the two sessions and the spool of a table that must wait compete with the reader for the same cores.
 */
export function defaultRestoreJobs(cores: number): number {
  return Math.max(1, Math.min(8, cores - 1));
}

export function loadConfig(env: Env = process.env): Config {
  return {
    uploadLocation: pathOf(env, 'UPLOAD_LOCATION', './data/library'),
    database: databaseOf(env),
    pgBinDir: env.PG_BIN_DIR ? resolve(env.PG_BIN_DIR) : undefined,
    port: portOf(env, 'PORT', 2283),
    host: env.HOST || '0.0.0.0',
    uploadMaxBytes: positiveIntOf(env, 'UPLOAD_MAX_SIZE_MB', 20 * 1024) * 1024 * 1024,
    childTimeoutMs: positiveIntOf(env, 'BACKUP_TIMEOUT_MINUTES', 6 * 60) * 60 * 1000,
    restoreAllowPrivileged: booleanOf(env, 'RESTORE_ALLOW_PRIVILEGED', false),
    restoreJobs: env.RESTORE_JOBS ? positiveIntOf(env, 'RESTORE_JOBS', 1) : defaultRestoreJobs(availableParallelism()),
    keepReplacedDatabase: booleanOf(env, 'RESTORE_KEEP_REPLACED_DATABASE', false),
    igzip: findIgzip(env.BACKUP_COMPRESSOR, env.PATH),
  };
}
