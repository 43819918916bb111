import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { isValidBackupName, parseBackupName, UPLOADED_PREFIX } from '../../shared/backup-name';
import type { BackupFile } from '../../shared/types';
import { InvalidDumpError, inspectDumpFile, isGzip, verifyGzipFile } from '../backup/dump-sniff';
import { newManifest, type UploadContents } from '../backup/manifest';
import type { StorageRepository } from '../repositories/storage.repository';
import type { UploadRepository } from '../repositories/upload.repository';
import type { DatabaseBackupService } from './database-backup.service';
import { badRequest, conflict, ServiceError } from '../errors';

/** What the client may call its file: a plain base name ending in .sql or .sql.gz. */
const UPLOAD_NAME = /^[\w.-]+\.sql(\.gz)?$/;
/** Temporary files of uploads in progress: hidden, so never listed as backups nor pruned by retention. */
const TEMP_NAME = /^\.upload-[0-9a-f]+\.tmp$/;
const NOT_GZIP = 'The file is not a valid gzip archive: it may be corrupted or truncated in transit';

export class UploadTooLargeError extends ServiceError {
  constructor(maxBytes: number) {
    super(413, `The file is larger than the upload limit of ${Math.round(maxBytes / 1024 / 1024)} MB (set by UPLOAD_MAX_SIZE_MB).`);
  }
}

/**
 * Backups uploaded from the admin's computer: the file is streamed (by the upload route)
 * into a hidden temporary file in backups/, checked, then moved to `uploaded-<name>`.
 * Anything rejected is removed, so a failed or aborted upload leaves no file behind.
 */
export class BackupUploadService {
  constructor(
    private readonly backups: DatabaseBackupService,
    private readonly storage: StorageRepository,
    private readonly uploads: UploadRepository,
    readonly maxBytes: number,
    /** The instance database: of a pg_dumpall upload, its section's rows go into the manifest. */
    readonly databaseName: string,
    /** igzip's path: it checks a .gz upload's whole stream as it arrives (null: zlib does). */
    readonly igzip: string | null = null,
  ) {}

  get folder(): string {
    return this.backups.backupsFolder;
  }

  /** A fresh temporary path in backups/ (same filesystem, so the final move is a rename). */
  tempPath(): string {
    return join(this.folder, `.upload-${randomBytes(12).toString('hex')}.tmp`);
  }

  /** The stored name for a client's file name: its base name only, prefixed with `uploaded-`. */
  targetName(originalName: unknown): string {
    // Browsers send a base name, but old ones (and scripts) may send a whole Windows or POSIX path.
    const base = typeof originalName === 'string' ? (originalName.split(/[\\/]/).pop() ?? '') : '';
    const name = UPLOADED_PREFIX + base;
    if (!UPLOAD_NAME.test(base) || !isValidBackupName(name)) {
      throw badRequest('Invalid file name: use letters, digits, "_", "-" and "." only, ending in .sql or .sql.gz');
    }
    return name;
  }

  /** Checked before the body is stored, so an obvious refusal costs no transfer. */
  async checkName(originalName: unknown): Promise<string> {
    const name = this.targetName(originalName);
    if (await this.storage.exists(join(this.folder, name))) throw this.exists(name);
    return name;
  }

  /**
   * Checks the received file and moves it into place; on any failure the temporary file is removed.
   * `gzipError`: the result of decompressing the file while it streamed in (null: intact);
   * undefined when nobody did, and then the file is read again here.
   */
  async accept(tempPath: string, originalName: unknown, gzipError?: Error | null, contents?: UploadContents): Promise<BackupFile> {
    try {
      const name = this.targetName(originalName);
      await this.checkContent(tempPath, name.endsWith('.gz'), gzipError);
      await this.storage.fsync(tempPath);
      if (!(await this.uploads.moveNoReplace(tempPath, join(this.folder, name)))) throw this.exists(name);
      await this.storage.fsyncDir(this.folder);
      if (contents) await this.writeManifest(name, contents).catch(() => undefined);
      return await this.describe(name);
    } finally {
      await this.uploads.remove(tempPath);
    }
  }

  /**
   * The stored file as the list shows it, with the version its name tells. Not the list itself:
   * for a name without a version the list reads the dump's contents up to its migrations rows,
   * which can take as long again as the upload; the list does that when it is next asked.
   */
  private async describe(name: string): Promise<BackupFile> {
    const stat = await this.storage.stat(join(this.folder, name)).catch(() => null);
    if (!stat?.isFile()) throw new Error(`Uploaded backup ${name} vanished after it was stored`);
    const info = parseBackupName(name);
    return {
      filename: name,
      filesize: stat.size,
      createdAt: (info.createdAt ?? stat.mtime).toISOString(),
      version: info.version,
      versionSource: info.version ? 'name' : null,
      postgresVersion: info.postgresVersion,
      kind: info.kind,
    };
  }

  /** What arrived, recorded beside it; the verification that follows reads the file back against it. */
  private async writeManifest(name: string, contents: UploadContents): Promise<void> {
    const info = parseBackupName(name);
    await this.backups.manifests.write(
      newManifest({
        filename: name,
        size: contents.size,
        sha256: contents.sha256,
        uncompressedSize: contents.stats.uncompressedSize,
        appVersion: info.version,
        postgresVersion: info.postgresVersion,
        createdAt: new Date().toISOString(),
        tables: contents.stats.tables,
        ...(contents.rowsPending ? { rowsPending: true } : {}),
        source: 'upload',
      }),
    );
  }

  discard(tempPath: string): Promise<void> {
    return this.uploads.remove(tempPath);
  }

  /** Temporary files of uploads cut off by a crash; call only at start, when no upload runs. */
  removeStaleTemps(): Promise<string[]> {
    return this.uploads.removeMatching(this.folder, TEMP_NAME);
  }

  private async checkContent(path: string, gzipName: boolean, gzipError: Error | null | undefined): Promise<void> {
    try {
      const head = await this.uploads.readHead(path, 2);
      const gzip = isGzip(head);
      if (gzipName && !gzip) throw new InvalidDumpError('The file is not a valid gzip archive: its name ends in .gz but its content is not gzip-compressed.');
      if (!gzipName && gzip) throw new InvalidDumpError('The file is gzip-compressed: its name must end in .sql.gz.');
      await inspectDumpFile(path);
      // The head alone says nothing of the end: a dump truncated in transit is found here, not mid-restore.
      if (gzip && gzipError) throw new InvalidDumpError(`${NOT_GZIP} (${gzipError.message})`);
      if (gzip && gzipError === undefined) await verifyGzipFile(path);
    } catch (error) {
      if (error instanceof InvalidDumpError) throw badRequest(error.message);
      throw error;
    }
  }

  private exists(name: string): ServiceError {
    return conflict(`A backup named ${name} already exists. Rename the file, or delete the existing backup first.`);
  }
}
