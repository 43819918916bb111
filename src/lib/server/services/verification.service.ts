import { parseBackupName } from '../../shared/backup-name';
import type { BackupVerification } from '../../shared/types';
import { DumpStats } from '../backup/dump-stats';
import { FileDigest, newManifest, type BackupManifest } from '../backup/manifest';
import type { BackupReadRepository } from '../repositories/backup-read.repository';
import type { DatabaseBackupService } from './database-backup.service';
import type { FileUse } from './file-use';

export interface VerificationDeps {
  backups: DatabaseBackupService;
  reader: BackupReadRepository;
  fileUse: FileUse;
  /** The instance database: of a pg_dumpall file, only its section's rows are counted. */
  databaseName: string;
  log: (line: string) => void;
  /** A backup found corrupted: the same alert as a failed backup. */
  onCorrupted: (filename: string, error: string) => void;
}

/**
 * Verification: is a backup file still what was written, and would it restore as a whole?
 * Its SHA-256 matches its manifest, the whole gzip stream decompresses (every member's CRC
 * and length), and the dump ends with pg_dump's completion line. One read of the file: the
 * hash on this thread, inflating on the thread pool. A backup without a manifest (an older
 * file, one copied in by hand) gets one from this first reading, rows per table included.
 */
export class VerificationService {
  /** One verification per file at a time: a second request waits for the first's answer. */
  private readonly running = new Map<string, Promise<BackupVerification>>();

  constructor(private readonly deps: VerificationDeps) {}

  async verify(filename: unknown): Promise<BackupVerification> {
    const path = await this.deps.backups.backupPath(filename);
    const name = filename as string;
    let run = this.running.get(name);
    if (!run) {
      run = this.check(name, path).finally(() => this.running.delete(name));
      this.running.set(name, run);
    }
    return run;
  }

  /** Every backup in the folder, newest first, one at a time (the nightly pass). Never throws. */
  async verifyAll(): Promise<{ verified: number; corrupted: string[] }> {
    const corrupted: string[] = [];
    let verified = 0;
    const files = await this.deps.backups.listBackups().catch(() => []);
    for (const file of files) {
      try {
        const result = await this.verify(file.filename);
        if (result.status === 'corrupted') corrupted.push(file.filename);
        else verified++;
      } catch (error) {
        // Deleted meanwhile: nothing to verify.
        this.deps.log(`Verification of ${file.filename} skipped: ${(error as Error).message}`);
      }
    }
    this.deps.log(`Verified ${verified} backup(s)${corrupted.length ? `; corrupted: ${corrupted.join(', ')}` : ''}`);
    return { verified, corrupted };
  }

  private async check(filename: string, path: string): Promise<BackupVerification> {
    const release = this.deps.fileUse.acquire(filename, 'a verification');
    try {
      const manifest = await this.deps.backups.manifests.read(filename);
      const digest = new FileDigest();
      // Rows are counted only for a manifest still to be made or still without them; the end line is always looked for.
      const stats = new DumpStats(this.deps.databaseName, { rows: !manifest || manifest.rowsPending === true });
      let readError: string | null = null;
      try {
        await this.deps.reader.read(path, {
          onFileChunk: (chunk) => digest.update(chunk),
          onTextChunk: (chunk) => stats.write(chunk),
        });
      } catch (error) {
        readError = describeReadError(error);
      }
      const sha256 = digest.digest();
      const contents = stats.end();
      // A changed file says most; what reading it found tells how badly.
      const changed = this.compare(manifest, sha256, digest.size);
      const problem = [changed, readError].filter(Boolean).join('; and ') || (contents.complete ? null : 'it does not end with pg_dump\'s "dump complete" line: the file was cut short or edited');
      const verification: BackupVerification = {
        status: problem ? 'corrupted' : 'verified',
        checkedAt: new Date().toISOString(),
        sha256,
        error: problem ? `The backup is corrupted: ${problem}.` : null,
      };
      // Deleted while it was read: nothing to record (a manifest would be an orphan).
      if (!(await this.deps.backups.statOf(filename))) return verification;
      if (manifest?.rowsPending && !problem) {
        // The bytes are the ones written (same SHA-256): their rows are the backup's.
        await this.deps.backups.manifests.update(filename, (current) => ({ ...current, tables: contents.tables, uncompressedSize: contents.uncompressedSize, rowsPending: false, verification }));
      } else if (manifest) {
        await this.deps.backups.manifests.update(filename, (current) => ({ ...current, verification }));
      } else {
        const info = parseBackupName(filename);
        const stat = await this.deps.backups.statOf(filename);
        const made: BackupManifest = newManifest({
          filename,
          size: digest.size,
          sha256,
          uncompressedSize: contents.uncompressedSize,
          appVersion: info.version,
          postgresVersion: info.postgresVersion,
          createdAt: (info.createdAt ?? stat?.mtime ?? new Date()).toISOString(),
          // The rows of a damaged file are not what it was meant to hold.
          tables: problem ? {} : contents.tables,
          source: 'verification',
          verification,
        });
        await this.deps.backups.manifests.write(made);
      }
      if (problem) {
        this.deps.log(`Verification of ${filename} failed: ${problem}`);
        this.deps.onCorrupted(filename, verification.error!);
      }
      return verification;
    } finally {
      release();
    }
  }

  private compare(manifest: BackupManifest | null, sha256: string, size: number): string | null {
    if (!manifest) return null;
    if (size !== manifest.size) return `it is ${size} bytes long, but ${manifest.size} were written on ${manifest.createdAt}`;
    if (sha256 !== manifest.sha256) return `its SHA-256 is ${sha256}, but ${manifest.sha256} was recorded when it was written: its bytes changed since`;
    return null;
  }
}

function describeReadError(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  if (e.code?.startsWith('Z_')) return `its gzip data is damaged (${e.message})`;
  if (e.code === 'EIO') return `the disk could not read it (${e.message})`;
  return e.message;
}
