import type { BackupKind } from './backup-name';

export interface BackupFile {
  filename: string;
  filesize: number;
  /** ISO date: from the name when it says, else the file's modification time. */
  createdAt: string;
  version: string | null;
  /** Where `version` was read: the file name, or (for names without one) the dump's own migrations rows; null when neither tells. */
  versionSource: 'name' | 'contents' | null;
  postgresVersion: string | null;
  kind: BackupKind;
  /** Whether a copy is in the off-site bucket (see OffsiteService); absent where off-site copies are not looked at. */
  offsite?: OffsiteCopyStatus;
  /** Where the file is: only off-site ones must be fetched back before a restore or download. */
  location?: 'local' | 'offsite' | 'both';
  /** Whether the file is still what was written (its manifest's SHA-256, whole gzip, pg_dump's last line). */
  verification?: BackupVerification;
  /** The last restore drill of this file. */
  drill?: BackupDrill;
}

export interface BackupVerification {
  status: 'verified' | 'corrupted' | 'unverified';
  /** ISO date of the last check; null when never checked. */
  checkedAt: string | null;
  sha256: string | null;
  /** Why the file is corrupted, in words. */
  error: string | null;
}

export interface BackupDrill {
  status: 'passed' | 'failed' | 'running' | 'never';
  /** ISO date the last drill started. */
  at: string | null;
  durationMs: number | null;
  error: string | null;
  /** The drill's log lines (the last ones), for a failure. */
  log?: string[];
}

/** What a backup holds, as its manifest records it. Keys of `tables` are "schema.table". */
export interface BackupManifestDto {
  filename: string;
  size: number;
  sha256: string;
  uncompressedSize: number;
  appVersion: string | null;
  postgresVersion: string | null;
  createdAt: string;
  tables: Record<string, number>;
}

export interface OffsiteCopyStatus {
  status: 'copied' | 'pending' | 'failed' | 'off';
  /** ISO date of the last change (copied, or the failure). */
  at: string | null;
  error: string | null;
}

export type MaintenanceAction = 'start' | 'end' | 'restore_database';
export type MaintenanceTask = 'backup' | 'restore' | 'swap' | 'migrations' | 'health' | 'rollback' | 'done' | 'error' | 'idle';

export interface MaintenanceStatus {
  active: boolean;
  action: MaintenanceAction | null;
  task: MaintenanceTask;
  progress: number;
  log: string[];
  error: string | null;
  /** Backup being restored, if any. */
  backup?: string | null;
  /** Restore point made before the restore, kept so the admin can roll back by hand. */
  restorePoint?: string | null;
  startedAt?: string | null;
  finishedAt?: string | null;
  /** What the current task does now, in words (e.g. which tables are loading). */
  stage?: string | null;
  /** Estimated seconds left in the current task; null while unknown. */
  etaSeconds?: number | null;
}

export interface QueueStatus {
  name: string;
  title: string;
  active: number;
  waiting: number;
  completed: number;
  failed: number;
  /** Bytes written so far by the running job. */
  progressBytes: number | null;
  lastRun: { result: 'success' | 'failed'; startedAt: string; durationMs: number; error: string | null; filename: string | null } | null;
  /** A running restore drill: which backup, and what it does now. */
  running?: { filename: string; startedAt: string; stage: string | null } | null;
}

export interface DrillSettings {
  enabled: boolean;
  cronExpression: string;
}

export interface BackupSettings {
  enabled: boolean;
  cronExpression: string;
  keepLastAmount: number;
  /** Instead of the last N: keep the newest backup of each of the last `daily` days, `weekly` weeks and `monthly` months. */
  generations?: RetentionGenerations | null;
}

export interface RetentionGenerations {
  daily: number;
  weekly: number;
  monthly: number;
}

export interface OffsiteSettings {
  enabled: boolean;
  endpoint: string;
  region: string;
  bucket: string;
  prefix: string;
  accessKeyId: string;
  /** Write-only: the API answers "" (see secretAccessKeySet). */
  secretAccessKey: string;
  forcePathStyle: boolean;
  /** How many routine backups the bucket keeps (its own count). */
  keepLastAmount: number;
  /** Read-only, in API answers: whether a secret is stored. */
  secretAccessKeySet?: boolean;
}

export interface EmailSettings {
  enabled: boolean;
  host: string;
  port: number;
  secure: boolean;
  username: string;
  /** Write-only: the API answers "" (see passwordSet). */
  password: string;
  from: string;
  to: string;
  passwordSet?: boolean;
}

export interface WebhookSettings {
  enabled: boolean;
  url: string;
}

export interface NotificationSettings {
  email: EmailSettings;
  webhook: WebhookSettings;
}

export interface SystemConfig {
  backup: {
    database: BackupSettings;
    offsite: OffsiteSettings;
    restorePoints: { keepLastAmount: number };
    /** 0 keeps uploaded files until deleted by hand. */
    uploads: { keepDays: number };
    /** The scheduled restore drill of the newest backup (weekly by default). */
    drill: DrillSettings;
  };
  notifications: NotificationSettings;
}

export interface UserDto {
  id: string;
  email: string;
  name: string;
  isAdmin: boolean;
  storageLabel: string | null;
  createdAt: string;
}

/** Who and what a database holds, in the terms the restore preview compares. */
export interface LibraryContents {
  /** Schema version (app version that shipped it); null when unknown. */
  version: string | null;
  /** ISO date: when the backup was made; for the current instance, when it was read. */
  date: string | null;
  /** Users not deleted, and the emails of the admins among them (sorted). */
  users: { count: number; admins: string[] };
  /** Rows of the assets table (trashed ones included: their files are still kept). */
  assets: number;
  albums: number;
  /** Rows per "schema.table". */
  tables: Record<string, number>;
}

/** What a backup's asset paths mean for the files in UPLOAD_LOCATION now. */
export interface PreviewFiles {
  /** Distinct files (originals, thumbnails, previews, encoded videos) the backup refers to. */
  referenced: number;
  /** Of those, on disk now. */
  present: number;
  missing: number;
  /** Files on disk the backup does not refer to (.immich markers, backups/ and .lifeboat/ left out). */
  untracked: number;
}

/** GET /api/admin/database-backups/{filename}/preview: a backup's contents beside the instance's, and what it means for the files. */
export interface RestorePreview {
  filename: string;
  backup: LibraryContents;
  /** Null when the instance's database cannot be read (maintenance mode, a broken restore). */
  current: LibraryContents | null;
  files: PreviewFiles;
  /** The dump-derived part came from the manifest's cache (same SHA-256) rather than a new reading. */
  cached: boolean;
  /**
   * False when the counts may not be what a restore loads: the file is damaged, or the dump
   * changes rows outside its COPY data (INSERT, UPDATE, DO, a trigger made before the data), or
   * names no columns where the preview reads them. `doubt` says which.
   */
  complete: boolean;
  doubt: string | null;
  /** ISO date the dump was read. */
  readAt: string;
}

/** The files-vs-database report (GET/POST /api/admin/maintenance/consistency). */
export interface ConsistencyReport {
  /** ISO dates. */
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** Why it ran: after a restore (of which backup), or asked for. */
  trigger: 'restore' | 'manual';
  backup: string | null;
  /** Distinct files the database refers to. */
  referenced: number;
  /** Files found in UPLOAD_LOCATION (markers, backups/ and .lifeboat/ left out). */
  onDisk: number;
  missing: { count: number; first: string[] };
  untracked: { count: number; first: string[] };
}
