import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { findPgBinDir } from './pg-binaries';
import type { ConnectionOptions } from './connection';
import { isAlive } from '../process/pid';

export interface EmbeddedClusterOptions {
  dataDir: string;
  pgBinDir?: string;
  port?: number;
  /** Tests turn durability off for speed; the app never does. */
  fsync?: boolean;
}

interface RunAs {
  uid: number;
  gid: number;
}

const SUPERUSER = 'postgres';

/** initdb and postgres refuse to run as root: then the cluster belongs to the postgres system user. */
function runAsFor(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error('Lifeboat runs as root, but PostgreSQL refuses to run as root and there is no "postgres" system user. Create one (useradd --system postgres) or run Lifeboat as an ordinary user.');
  }
}

function run(cmd: string, args: string[], runAs: RunAs | undefined): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { ...runAs, encoding: 'utf8', cwd: tmpdir() }, (error, stdout, stderr) => {
      if (error) {
        reject(Object.assign(new Error(`${cmd.split('/').pop()} failed: ${(stderr || stdout || error.message).trim()}`), { code: (error as any).code }));
      } else resolve({ stdout, stderr });
    });
  });
}

/**
 * A PostgreSQL cluster owned by the app: created on first start with initdb, started and
 * stopped with pg_ctl. It listens only on a unix socket inside a private folder, so no other
 * host (and no other unprivileged local user) can connect.
 */
export class EmbeddedCluster {
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
  private binDir = '';
  /** True when another Lifeboat process (the web server, or the CLI) already runs this cluster. */
  private attached = false;
  private readonly runAs: RunAs | undefined;

  constructor(private readonly options: EmbeddedClusterOptions) {
    this.dataDir = options.dataDir;
    this.port = options.port ?? 5432;
    this.runAs = runAsFor();
    // Unix socket paths are limited to ~107 bytes; fall back to a short private folder.
    const inData = join(this.dataDir, `.s.PGSQL.${this.port}`);
    this.socketDir = inData.length < 100 ? this.dataDir : join(tmpdir(), `lifeboat-${createHash('sha1').update(this.dataDir).digest('hex').slice(0, 12)}`);
  }

  get logFile(): string {
    return join(this.dataDir, 'lifeboat-postgres.log');
  }

  connection(database: string): ConnectionOptions {
    return { host: this.socketDir, port: this.port, user: SUPERUSER, password: undefined, database };
  }

  async start(): Promise<void> {
    this.prepareFolder(this.dataDir);
    if (this.socketDir !== this.dataDir) this.prepareFolder(this.socketDir);
    const versionFile = join(this.dataDir, 'PG_VERSION');
    const existingMajor = existsSync(versionFile) ? Number(readFileSync(versionFile, 'utf8').trim()) : undefined;
    const { dir } = await findPgBinDir(['pg_ctl', 'initdb', 'postgres'], { pgBinDir: this.options.pgBinDir, major: existingMajor });
    this.binDir = dir;
    if (!existingMajor) {
      await run(join(dir, 'initdb'), ['-D', this.dataDir, '-U', SUPERUSER, '-E', 'UTF8', '--no-locale', '--auth=trust'], this.runAs);
    }
    if (await this.isRunning()) {
      // Used by the CLI while the web server runs (or the other way round): connect, never stop it.
      this.attached = true;
      return;
    }
    const settings = [`-p ${this.port}`, `-k ${this.socketDir}`, "-c listen_addresses=''", '-c unix_socket_permissions=0700'];
    // Nothing replicates from the embedded cluster (backups are dumps), so WAL needs only crash
    // safety. With wal_level=minimal, a restore's COPY into tables it created in its own single
    // transaction skips WAL entirely: the data is written once, then synced at commit.
    settings.push('-c wal_level=minimal', '-c max_wal_senders=0');
    if (this.options.fsync === false) settings.push('-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off');
    await run(join(dir, 'pg_ctl'), ['-D', this.dataDir, '-w', '-t', '120', '-l', this.logFile, '-o', settings.join(' '), 'start'], this.runAs).catch((error) => {
      throw new Error(`${error.message}\nSee the PostgreSQL log: ${this.logFile}`);
    });
  }

  async stop(): Promise<void> {
    const pidFile = join(this.dataDir, 'postmaster.pid');
    if (this.attached || !this.binDir || !existsSync(pidFile)) return;
    const pid = firstLineNumber(pidFile);
    await run(join(this.binDir, 'pg_ctl'), ['-D', this.dataDir, '-w', '-t', '60', '-m', 'fast', 'stop'], this.runAs).catch(() => undefined);
    // pg_ctl returns once postmaster.pid is gone, which the postmaster removes just before it exits: stopped means exited.
    for (let i = 0; i < 100 && isLivePostgres(pid); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  }

  /**
   * A crash leaves postmaster.pid (and the socket's lock file) behind. When no postgres owns
   * that pid any more they are stale: once the dead server's children have exited too (they
   * would still write to the data folder), both are removed so the next start succeeds.
   * PostgreSQL's own check is not enough here: it takes a killed but not yet reaped
   * (zombie) postmaster for a live one.
   */
  private async isRunning(): Promise<boolean> {
    const pidFile = join(this.dataDir, 'postmaster.pid');
    const socketLock = join(this.socketDir, `.s.PGSQL.${this.port}.lock`);
    if (existsSync(pidFile)) {
      const pid = firstLineNumber(pidFile);
      if (isLivePostgres(pid)) return existsSync(join(this.socketDir, `.s.PGSQL.${this.port}`));
      await this.waitForOrphans();
      rmSync(pidFile, { force: true });
    }
    if (existsSync(socketLock) && !isLivePostgres(firstLineNumber(socketLock))) {
      rmSync(socketLock, { force: true });
      rmSync(join(this.socketDir, `.s.PGSQL.${this.port}`), { force: true });
    }
    return false;
  }

  /** Backends of a killed postmaster exit on their own within moments; a new server must not start beside them. */
  private async waitForOrphans(): Promise<void> {
    let pids: number[] = [];
    for (let attempt = 0; attempt < 100; attempt++) {
      pids = processesIn(this.dataDir);
      if (!pids.length) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`PostgreSQL processes ${pids.join(', ')} of a crashed server still use ${this.dataDir}. Stop them (kill ${pids.join(' ')}) and start again.`);
  }

  private prepareFolder(dir: string): void {
    mkdirSync(dir, { recursive: true });
    if (!this.runAs) {
      chmodSync(dir, 0o700);
      return;
    }
    chownSync(dir, this.runAs.uid, this.runAs.gid);
    chmodSync(dir, 0o700);
    // The postgres user must be able to walk down to the folder.
    for (let parent = dirname(dir); parent !== dirname(parent); parent = dirname(parent)) {
      const mode = statSync(parent).mode;
      if (!(mode & constants.S_IXOTH)) {
        throw new Error(`The PostgreSQL data folder ${dir} is inside ${parent}, which the "postgres" system user cannot enter. Run "chmod o+x ${parent}" or set DB_DATA_LOCATION to a folder elsewhere.`);
      }
    }
  }
}

function firstLineNumber(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8').split('\n')[0]) || 0;
  } catch {
    return 0;
  }
}

/** True for a running postgres process; false for a dead pid, a reused pid, or a zombie (no command line). */
function isLivePostgres(pid: number): boolean {
  if (!isAlive(pid)) return false;
  if (!existsSync('/proc')) return true;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres');
  } catch {
    return false;
  }
}

/** Live postgres processes whose working folder is `dir` (PostgreSQL processes run in their data folder). */
function processesIn(dir: string): number[] {
  if (!existsSync('/proc')) return [];
  let target: string;
  try {
    target = realpathSync(dir);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`) === target && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('postgres')) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}
