/**
 * `<backup>.manifest.json`, beside each backup: what was written (SHA-256 and size of the file,
 * uncompressed size, versions, rows per table) and what is known of it since (verification,
 * restore drill, preview). It is part of its backup: deleted, pruned and copied off-site with it.
 */
import { createHash, type Hash } from 'node:crypto';
import type { BackupDrill, BackupManifestDto, BackupVerification } from '../../shared/types';
import type { DumpStatsResult } from './dump-stats';

/** What an upload's storage learnt while the file streamed in: its manifest's facts. */
export interface UploadContents {
  sha256: string;
  size: number;
  stats: DumpStatsResult;
  /** The rows were not counted on arrival (igzip checked the gzip): the verification that follows counts them. */
  rowsPending?: boolean;
}

export const MANIFEST_SUFFIX = '.manifest.json';
const FORMAT = 1;

export interface BackupManifest extends BackupManifestDto {
  format: number;
  /** How the manifest came to be: written with the backup, with an upload, or on the file's first verification. */
  source: 'backup' | 'upload' | 'verification';
  /** The rows (and uncompressed size) are still to be counted: by the file's first verification, from the SHA-256-checked bytes. */
  rowsPending?: boolean;
  verification: BackupVerification;
  drill: BackupDrill;
  /** The restore preview's reading of the dump (see PreviewService), cached: it is the same for the same SHA-256. */
  preview?: unknown;
}

export function manifestName(filename: string): string {
  return `${filename}${MANIFEST_SUFFIX}`;
}

export function isManifestName(name: string): boolean {
  return name.endsWith(MANIFEST_SUFFIX);
}

/** The backup a manifest belongs to. */
export function backupOfManifest(name: string): string {
  return name.slice(0, -MANIFEST_SUFFIX.length);
}

export const UNVERIFIED: BackupVerification = { status: 'unverified', checkedAt: null, sha256: null, error: null };
export const NO_DRILL: BackupDrill = { status: 'never', at: null, durationMs: null, error: null };

export function newManifest(fields: Omit<BackupManifest, 'format' | 'verification' | 'drill'> & Partial<Pick<BackupManifest, 'verification' | 'drill'>>): BackupManifest {
  return { format: FORMAT, verification: { ...UNVERIFIED, sha256: fields.sha256 }, drill: NO_DRILL, ...fields };
}

/** A manifest read from disk: anything that does not look like one is treated as missing (it is rebuilt on verification). */
export function parseManifest(value: unknown, filename: string): BackupManifest | null {
  const m = value as Partial<BackupManifest> | null;
  if (!m || typeof m !== 'object' || m.format !== FORMAT || m.filename !== filename) return null;
  if (typeof m.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(m.sha256) || typeof m.size !== 'number') return null;
  if (!m.tables || typeof m.tables !== 'object') return null;
  return { ...m, verification: m.verification ?? { ...UNVERIFIED, sha256: m.sha256 }, drill: m.drill ?? NO_DRILL } as BackupManifest;
}

/** SHA-256 and size of bytes as they go by. */
export class FileDigest {
  private readonly hash: Hash = createHash('sha256');
  size = 0;

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}
