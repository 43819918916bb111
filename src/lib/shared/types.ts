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
}

export type MaintenanceAction = 'start' | 'end' | 'restore_database';
export type MaintenanceTask = 'backup' | 'restore' | 'migrations' | 'health' | 'rollback' | 'done' | 'error' | 'idle';

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
}

export interface BackupSettings {
  enabled: boolean;
  cronExpression: string;
  keepLastAmount: number;
}

export interface SystemConfig {
  backup: { database: BackupSettings };
}

export interface UserDto {
  id: string;
  email: string;
  name: string;
  isAdmin: boolean;
  storageLabel: string | null;
  createdAt: string;
}
