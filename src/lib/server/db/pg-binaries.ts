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
