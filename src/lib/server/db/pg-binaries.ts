import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const SUPPORTED_PG_MAJORS = [18, 17, 16, 15, 14] as const;

export class PgBinariesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PgBinariesError';
  }
}

export class UnsupportedPostgresVersionError extends Error {
  constructor(version: string) {
    super(
      `Unsupported PostgreSQL version ${version}: Lifeboat supports PostgreSQL ${[...SUPPORTED_PG_MAJORS].reverse().join(', ')}.`,
    );
    this.name = 'UnsupportedPostgresVersionError';
  }
}

const INSTALL_HINT = 'Install PostgreSQL 14 to 18 (Debian/Ubuntu: apt-get install postgresql), or set PG_BIN_DIR to the folder holding initdb, pg_ctl, pg_dump and psql.';

function candidates(pgBinDir: string | undefined, major?: number): string[] {
  const dirs: string[] = [];
  if (pgBinDir) dirs.push(pgBinDir);
  const majors = major ? [major] : SUPPORTED_PG_MAJORS;
  for (const m of majors) dirs.push(`/usr/lib/postgresql/${m}/bin`);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir) dirs.push(dir);
  return dirs;
}

async function majorOf(binary: string): Promise<number | null> {
  try {
    const { stdout } = await run(binary, ['--version']);
    const match = /\(PostgreSQL\)\s+(\d+)/.exec(stdout);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Finds a folder with the given tools: PG_BIN_DIR first, then Debian's versioned folders
 * newest first, then PATH. With `major`, only tools of that major version are accepted,
 * because pg_dump refuses newer servers and older psql misreads newer dumps.
 */
export async function findPgBinDir(tools: string[], options: { pgBinDir?: string; major?: number } = {}): Promise<{ dir: string; major: number }> {
  for (const dir of candidates(options.pgBinDir, options.major)) {
    if (!tools.every((tool) => existsSync(join(dir, tool)))) continue;
    const major = await majorOf(join(dir, tools[0]));
    if (major === null) continue;
    if (options.major ? major === options.major : (SUPPORTED_PG_MAJORS as readonly number[]).includes(major)) {
      return { dir, major };
    }
  }
  if (options.major) {
    throw new PgBinariesError(
      `PostgreSQL ${options.major} client tools (${tools.join(', ')}) were not found; they must match the database server's version. Install them (Debian/Ubuntu: apt-get install postgresql-client-${options.major}) or set PG_BIN_DIR.`,
    );
  }
  throw new PgBinariesError(`PostgreSQL server tools (${tools.join(', ')}) were not found. ${INSTALL_HINT}`);
}

/** The client tools (pg_dump, psql) whose major version matches the server's, as the reference does. */
export async function clientToolsFor(serverVersion: string, pgBinDir?: string): Promise<{ pgDump: string; psql: string; major: number }> {
  const major = Number.parseInt(serverVersion, 10);
  if (!(SUPPORTED_PG_MAJORS as readonly number[]).includes(major)) throw new UnsupportedPostgresVersionError(serverVersion);
  const { dir } = await findPgBinDir(['pg_dump', 'psql'], { pgBinDir, major });
  return { pgDump: join(dir, 'pg_dump'), psql: join(dir, 'psql'), major };
}

/** psql learned \restrict (restricted mode: every other meta-command refused) in these minor releases, and has it in every release from 18 on. */
const RESTRICT_SINCE: Record<number, number> = { 13: 22, 14: 19, 15: 14, 16: 10, 17: 6 };

/** "15.18" → true; "15.13" → false; "18.0", "19devel" → true. */
export function supportsRestrict(version: string): boolean {
  const match = /^(\d+)(?:\.(\d+))?/.exec(version);
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2] ?? 0)];
  if (major >= 18) return true;
  const since = RESTRICT_SINCE[major];
  return since !== undefined && minor >= since;
}

export class RestrictedPsqlMissingError extends Error {
  constructor(serverMajor: number, found: string[]) {
    super(
      `No installed psql can run a restore safely: a restore needs psql's restricted mode (\\restrict), which came with ` +
        `PostgreSQL 14.19, 15.14, 16.10, 17.6 and 18. Found: ${found.length ? found.join(', ') : 'none'}. ` +
        `Update the PostgreSQL client (Debian/Ubuntu: apt-get update && apt-get install postgresql-client-${serverMajor}), or set PG_BIN_DIR to a newer one.`,
    );
    this.name = 'RestrictedPsqlMissingError';
  }
}

/**
 * The psql for restores: one with \restrict, of the server's major version if it has it, else of
 * a newer major (psql reads older servers and dumps). Never one without: it would run a dump's `\!`.
 */
export function choosePsql(candidates: Array<{ path: string; version: string }>, serverMajor: number): string | null {
  const usable = candidates
    .filter((candidate) => supportsRestrict(candidate.version) && Number.parseInt(candidate.version, 10) >= serverMajor)
    .sort((a, b) => Number.parseInt(a.version, 10) - Number.parseInt(b.version, 10));
  return usable[0]?.path ?? null;
}

async function psqlVersion(binary: string): Promise<string | null> {
  try {
    const { stdout } = await run(binary, ['--version']);
    return /\(PostgreSQL\)\s+(\d+(?:\.\d+)?\S*)/.exec(stdout)?.[1] ?? null;
  } catch {
    return null;
  }
}

export async function restorePsqlFor(serverVersion: string, pgBinDir?: string): Promise<string> {
  const serverMajor = Number.parseInt(serverVersion, 10);
  const found: Array<{ path: string; version: string }> = [];
  const seen = new Set<string>();
  for (const dir of candidates(pgBinDir)) {
    const path = join(dir, 'psql');
    if (seen.has(path) || !existsSync(path)) continue;
    seen.add(path);
    const version = await psqlVersion(path);
    if (version) found.push({ path, version });
  }
  const chosen = choosePsql(found, serverMajor);
  if (!chosen) throw new RestrictedPsqlMissingError(serverMajor, found.map((c) => `psql ${c.version} (${c.path})`));
  return chosen;
}
