import { join } from 'node:path';
import { isValidBackupName, parseBackupName, restorePointName, routineBackupName } from '../../shared/backup-name';
import type { BackupFile } from '../../shared/types';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { clientToolsFor } from '../db/pg-binaries';
import type { DumpRepository } from '../repositories/dump.repository';
import type { StorageRepository } from '../repositories/storage.repository';
import { APP_VERSION } from '../version';
import { badRequest, notFound } from './errors';
import { selectForRetention } from './retention';

export interface CreateBackupOptions {
  kind?: 'routine' | 'restore-point';
  signal?: AbortSignal;
  onBytes?: (bytes: number) => void;
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
  ) {}

  /** Makes one complete backup file, or none at all: on any failure the .tmp is removed. */
  async createBackup(options: CreateBackupOptions = {}): Promise<{ filename: string; filesize: number }> {
    const serverVersion = await this.db.serverVersion();
    const { pgDump } = await clientToolsFor(serverVersion, this.config.pgBinDir);
    const now = new Date();
    const filename = options.kind === 'restore-point' ? restorePointName(now, APP_VERSION, serverVersion) : routineBackupName(now, APP_VERSION, serverVersion);
    const path = join(this.backupsFolder, filename);
    const tmp = `${path}.tmp`;
    try {
      await this.storage.removeIfExists(tmp);
      await this.dumps.dumpToFile({
        pgDump,
        connection: this.db.connection,
        path: tmp,
        signal: options.signal,
        timeoutMs: this.config.childTimeoutMs,
        onBytes: options.onBytes,
      });
      await this.storage.fsync(tmp);
      await this.storage.rename(tmp, path);
      await this.storage.fsyncDir(this.backupsFolder);
    } catch (error) {
      await this.storage.removeIfExists(tmp);
      throw error;
    }
    const { size } = await this.storage.stat(path);
    return { filename, filesize: size };
  }

  async listBackups(): Promise<BackupFile[]> {
    const names = (await this.storage.readdir(this.backupsFolder)).filter(isValidBackupName);
    const files: BackupFile[] = [];
    for (const filename of names) {
      const stat = await this.storage.stat(join(this.backupsFolder, filename)).catch(() => null);
      if (!stat?.isFile()) continue;
      const info = parseBackupName(filename);
      files.push({
        filename,
        filesize: stat.size,
        createdAt: (info.createdAt ?? stat.mtime).toISOString(),
        version: info.version,
        postgresVersion: info.postgresVersion,
        kind: info.kind,
      });
    }
    return files.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.filename.localeCompare(a.filename));
  }

  /** The name is checked before any path is built: a bad name is 400, a missing file 404. */
  async backupPath(filename: unknown): Promise<string> {
    if (!isValidBackupName(filename)) throw badRequest('Invalid backup name: use a plain file name ending in .sql or .sql.gz');
    const path = join(this.backupsFolder, filename);
    const stat = await this.storage.stat(path).catch(() => null);
    if (!stat?.isFile()) throw notFound(`Backup ${filename} not found`);
    return path;
  }

  async deleteBackups(filenames: unknown): Promise<void> {
    if (!Array.isArray(filenames) || filenames.length === 0) throw badRequest('Give the backups to delete as {"backups": ["name.sql.gz", ...]}');
    if (!filenames.every(isValidBackupName)) throw badRequest('Invalid backup name: use a plain file name ending in .sql or .sql.gz');
    const paths = await Promise.all(filenames.map((name) => this.backupPath(name)));
    for (const path of paths) await this.storage.removeIfExists(path);
  }

  /** After a successful backup: keep the newest `keep` routine backups, remove stale .tmp files; never other kinds or `justMade`. */
  async applyRetention(keep: number, justMade: string): Promise<string[]> {
    const entries = await this.storage.readdir(this.backupsFolder);
    const doomed = selectForRetention(entries, keep, justMade);
    for (const name of doomed) await this.storage.removeIfExists(join(this.backupsFolder, name));
    return doomed;
  }
}
