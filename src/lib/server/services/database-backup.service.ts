import { join } from 'node:path';
import { isValidBackupName, parseBackupName, restorePointName, routineBackupName } from '../../shared/backup-name';
import type { BackupFile } from '../../shared/types';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { DumpVersionCache } from '../backup/dump-version';
import { DumpStats } from '../backup/dump-stats';
import { FileDigest, newManifest, NO_DRILL, UNVERIFIED } from '../backup/manifest';
import { clientToolsFor } from '../db/pg-binaries';
import type { DumpRepository } from '../repositories/dump.repository';
import type { ReadStream, StorageRepository } from '../repositories/storage.repository';
import { APP_VERSION } from '../version';
import { badRequest, notFound } from '../errors';
import type { FileUse } from './file-use';
import { ManifestStore } from './manifest-store';
import { selectForRetention } from './retention';

export interface CreateBackupOptions {
  kind?: 'routine' | 'restore-point';
  /** Restore points are written plain (.sql) and compressed after the restore: see RestoreService. */
  compress?: boolean;
  signal?: AbortSignal;
  onBytes?: (bytes: number) => void;
  /** Another database of the server (the one a staged restore replaced), dumped as the app's role. */
  database?: string;
}

const INVALID_NAME = 'Invalid backup name: use a plain file name ending in .sql or .sql.gz';

/** A failure in words an admin can act on; pg_dump's stderr is already in the child's message. */
function explain(error: unknown, folder: string): Error {
  const code = (error as NodeJS.ErrnoException)?.code;
  const detail = (error as Error)?.message;
  if (code === 'ENOSPC') return new Error(`Not enough disk space in ${folder}: the backup was removed. Free some space or lower the number of backups kept. (${detail})`, { cause: error });
  if (code === 'EACCES' || code === 'EROFS') return new Error(`Cannot write to ${folder}: fix the folder's permissions. (${detail})`, { cause: error });
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * Database backups in UPLOAD_LOCATION/backups: making them (pg_dump → parallel gzip → .tmp →
 * fsync → rename), listing, deleting and retention. Locking is the caller's (job or restore).
 */
export class DatabaseBackupService {
  constructor(
    private readonly config: Config,
    private readonly db: Database,
    private readonly dumps: DumpRepository,
    private readonly storage: StorageRepository,
    readonly backupsFolder: string,
    /** Marks downloads as in use, so retention leaves the file alone until the stream closes. */
    private readonly fileUse?: FileUse,
  ) {
    this.manifests = new ManifestStore(storage, backupsFolder);
  }

  /** `<backup>.manifest.json` beside each backup. */
  readonly manifests: ManifestStore;
  /** Which backup a restore drill of this process is restoring now (set by the app: see DrillService). */
  runningDrill: () => string | null = () => null;

  /**
   * Makes one complete backup file, or none at all: on any failure the .tmp is removed. Its
   * manifest (SHA-256 of the file, rows per table from the COPY blocks) is learnt on the way and
   * written once the file is in place: a crash between the two leaves a backup whose manifest
   * is made on its first verification.
   */
  async createBackup(options: CreateBackupOptions = {}): Promise<{ filename: string; filesize: number }> {
    const serverVersion = await this.db.serverVersion();
    const { pgDump } = await clientToolsFor(serverVersion, this.config.pgBinDir);
    const compress = options.compress !== false || options.kind !== 'restore-point';
    const filename = await this.freeName(options.kind ?? 'routine', serverVersion, compress);
    const path = join(this.backupsFolder, filename);
    const tmp = `${path}.tmp`;
    // With igzip the text never reaches this process: its rows are counted by the verification
    // that reads the file back right after (one pass instead of two on the backup's critical path).
    const stats = compress && this.dumps.compressesOutside ? null : new DumpStats(options.database ?? this.db.connection.database);
    const digest = new FileDigest();
    try {
      await this.storage.removeIfExists(tmp);
      await this.dumps.dumpToFile({
        onDumpChunk: stats ? (chunk) => stats.write(chunk) : undefined,
        onFileChunk: (chunk) => digest.update(chunk),
        pgDump,
        connection: options.database ? { ...this.db.connection, database: options.database } : this.db.connection,
        path: tmp,
        signal: options.signal,
        timeoutMs: this.config.childTimeoutMs,
        onBytes: options.onBytes,
        compress,
      });
      await this.storage.fsync(tmp);
      await this.storage.rename(tmp, path);
      await this.storage.fsyncDir(this.backupsFolder);
    } catch (error) {
      await this.storage.removeIfExists(tmp).catch(() => undefined);
      throw explain(error, this.backupsFolder);
    }
    const { size } = await this.storage.stat(path);
    const contents = stats?.end();
    await this.manifests
      .write(
        newManifest({
          filename,
          size,
          sha256: digest.digest(),
          uncompressedSize: contents?.uncompressedSize ?? 0,
          appVersion: APP_VERSION,
          postgresVersion: serverVersion,
          createdAt: new Date().toISOString(),
          tables: contents?.tables ?? {},
          ...(contents ? {} : { rowsPending: true }),
          source: 'backup',
        }),
      )
      // The backup is complete without it: its first verification makes one.
      .catch(() => undefined);
    return { filename, filesize: size };
  }

  /**
   * Names have one-second resolution: never reuse an existing one (a restore point made in the
   * same second as the backup being restored would replace it). Callers hold the lock, so no race.
   */
  private async freeName(kind: 'routine' | 'restore-point', serverVersion: string, compressed: boolean): Promise<string> {
    for (let offset = 0; ; offset++) {
      const at = new Date(Date.now() + offset * 1000);
      const name = kind === 'restore-point' ? restorePointName(at, APP_VERSION, serverVersion, compressed) : routineBackupName(at, APP_VERSION, serverVersion);
      // The plain and the compressed form of a name are the same backup: neither may exist.
      const plain = join(this.backupsFolder, name.replace(/\.gz$/, ''));
      if (!(await this.storage.exists(plain)) && !(await this.storage.exists(`${plain}.gz`))) return name;
    }
  }

  /**
   * Turns a plain `.sql` backup into `.sql.gz` (same name + .gz): complete and fsynced before
   * the plain file is removed, so one of the two always exists. Returns the new name.
   */
  async compressBackup(filename: string, signal?: AbortSignal): Promise<string> {
    const path = await this.backupPath(filename);
    if (filename.endsWith('.gz')) return filename;
    const target = `${path}.gz`;
    const tmp = `${target}.tmp`;
    const digest = new FileDigest();
    try {
      await this.dumps.compressFile(path, tmp, signal, (chunk) => digest.update(chunk));
      await this.storage.fsync(tmp);
      await this.storage.rename(tmp, target);
      await this.storage.fsyncDir(this.backupsFolder);
    } catch (error) {
      await this.storage.removeIfExists(tmp).catch(() => undefined);
      throw explain(error, this.backupsFolder);
    }
    // The same dump in a new file: the manifest follows it (its rows are the plain file's).
    const manifest = await this.manifests.read(filename);
    if (manifest) {
      const sha256 = digest.digest();
      await this.manifests
        .write({ ...manifest, filename: `${filename}.gz`, size: digest.size, sha256, verification: { status: 'unverified', checkedAt: null, sha256, error: null } })
        .catch(() => undefined);
    }
    await this.storage.removeIfExists(path);
    await this.manifests.remove(filename);
    return `${filename}.gz`;
  }

  /** Versions read from inside backups whose names carry none: each file is read once (see DumpVersionCache). */
  private contentVersionCache?: DumpVersionCache;
  private get contentVersions(): DumpVersionCache {
    return (this.contentVersionCache ??= new DumpVersionCache(this.config.database.database));
  }

  async listBackups(): Promise<BackupFile[]> {
    // A missing folder (moved storage, not created yet) holds no backups; it is not an error.
    const entries = await this.storage.readdir(this.backupsFolder).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [];
      throw error;
    });
    const names = entries.filter(isValidBackupName);
    const files: BackupFile[] = [];
    for (const filename of names) {
      const path = join(this.backupsFolder, filename);
      const stat = await this.storage.stat(path).catch(() => null);
      if (!stat?.isFile()) continue;
      const info = parseBackupName(filename);
      // A name without a version (uploads, hand-copied files): the dump's own migrations rows may tell.
      const fromContents = info.version ? null : await this.contentVersions.versionOf(path, stat);
      const manifest = await this.manifests.read(filename);
      let drill = manifest?.drill ?? NO_DRILL;
      // Recorded as running by a process that stopped (or a drill that ended without a word): it did not finish.
      if (drill.status === 'running' && this.runningDrill() !== filename) drill = { ...drill, status: 'failed', error: 'The drill was interrupted (Lifeboat stopped while it ran).' };
      files.push({
        filename,
        filesize: stat.size,
        createdAt: (info.createdAt ?? stat.mtime).toISOString(),
        version: info.version ?? fromContents,
        versionSource: info.version ? 'name' : fromContents ? 'contents' : null,
        postgresVersion: info.postgresVersion,
        kind: info.kind,
        verification: manifest?.verification ?? UNVERIFIED,
        drill,
      });
    }
    this.contentVersions.retain(new Set(names.map((name) => join(this.backupsFolder, name))));
    return files.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.filename.localeCompare(a.filename));
  }

  /** The file's stat, or null when it is gone. */
  statOf(filename: string) {
    return this.storage.stat(join(this.backupsFolder, filename)).catch(() => null);
  }

  /** The name is checked before any path is built: a bad name is 400, a missing file 404. */
  async backupPath(filename: unknown): Promise<string> {
    if (!isValidBackupName(filename)) throw badRequest(INVALID_NAME);
    const path = join(this.backupsFolder, filename);
    const stat = await this.storage.stat(path).catch(() => null);
    if (!stat?.isFile()) throw notFound(`Backup ${filename} not found`);
    return path;
  }

  /** A download: the file's size and a stream of it, after the same checks as backupPath. */
  async openBackup(filename: unknown): Promise<{ filename: string; size: number; stream: ReadStream }> {
    const path = await this.backupPath(filename);
    const { size } = await this.storage.stat(path);
    const stream = this.storage.createReadStream(path);
    const release = this.fileUse?.acquire(filename as string, 'a download');
    if (release) stream.once('close', release);
    return { filename: filename as string, size, stream };
  }

  /**
   * All or nothing: every name is checked and every file must exist before one is removed,
   * so a 404 names all the missing files and the others are still there.
   */
  async deleteBackups(filenames: unknown): Promise<{ deleted: string[] }> {
    if (!Array.isArray(filenames) || filenames.length === 0) throw badRequest('Give the backups to delete as {"backups": ["name.sql.gz", ...]}');
    const invalid = filenames.filter((name) => !isValidBackupName(name));
    if (invalid.length) throw badRequest(`${INVALID_NAME} (got ${invalid.map((name) => JSON.stringify(name)).join(', ')})`);
    const names = [...new Set(filenames as string[])];
    const missing: string[] = [];
    for (const name of names) {
      const stat = await this.storage.stat(join(this.backupsFolder, name)).catch(() => null);
      if (!stat?.isFile()) missing.push(name);
    }
    if (missing.length) throw notFound(`Backup${missing.length > 1 ? 's' : ''} not found: ${missing.join(', ')}. Nothing was deleted.`);
    for (const name of names) {
      await this.storage.removeIfExists(join(this.backupsFolder, name));
      await this.manifests.remove(name);
    }
    return { deleted: names };
  }

  /** After a successful backup: keep the newest `keep` routine backups, remove stale .tmp files; never other kinds or `justMade`. */
  async applyRetention(keep: number, justMade: string): Promise<string[]> {
    if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`Retention must keep at least one backup (got ${keep})`);
    const entries = await this.storage.readdir(this.backupsFolder);
    const doomed = selectForRetention(entries, keep, justMade);
    for (const name of doomed) {
      await this.storage.removeIfExists(join(this.backupsFolder, name));
      await this.manifests.remove(name);
    }
    return doomed;
  }
}
