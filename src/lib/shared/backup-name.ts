/** Backup file names: the one place that knows how they are built and read. */

export type BackupKind = 'routine' | 'restore-point' | 'uploaded' | 'other';

export interface BackupNameInfo {
  kind: BackupKind;
  version: string | null;
  postgresVersion: string | null;
  /** From the name when it says (UTC), else null. */
  createdAt: Date | null;
}

/** Plain base names only: no slash, no "..", nothing but word characters, "-" and ".". */
export const BACKUP_NAME_PATTERN = /^[\w.-]+\.sql(\.gz)?$/;

export const RESTORE_POINT_PREFIX = 'restore-point-';
export const UPLOADED_PREFIX = 'uploaded-';

export function isValidBackupName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= 255 && BACKUP_NAME_PATTERN.test(name) && !name.startsWith('.') && !name.includes('..');
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** yyyyMMdd'T'HHmmss in UTC: written and read back as UTC everywhere. */
export function formatBackupTimestamp(date: Date): string {
  return (
    `${date.getUTCFullYear()}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}` +
    `T${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}`
  );
}

export function routineBackupName(date: Date, appVersion: string, postgresVersion: string): string {
  return `immich-db-backup-${formatBackupTimestamp(date)}-v${appVersion}-pg${postgresVersion}.sql.gz`;
}

/** `compressed: false` gives the plain `.sql` name a restore point has until it is compressed. */
export function restorePointName(date: Date, appVersion: string, postgresVersion: string, compressed = true): string {
  const name = RESTORE_POINT_PREFIX + routineBackupName(date, appVersion, postgresVersion);
  return compressed ? name : name.replace(/\.gz$/, '');
}

const ROUTINE = /^immich-db-backup-(\d{8}T\d{6})-v([\w.]+?)-pg([\d.]+)\.sql(?:\.gz)?$/;
const LEGACY = /^immich-db-backup-(\d{10,14})\.sql\.gz$/;

function parseTimestamp(text: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})$/.exec(text);
  if (!m) return null;
  const date = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  // Date.UTC rolls month 13 or hour 99 over into a real date: such a name says nothing trustworthy.
  return formatBackupTimestamp(date) === text ? date : null;
}

/** The version is the text between "-v" and the next "-", as the reference reads it. */
function versionIn(name: string): string | null {
  const m = /-v(\d+\.\d+\.\d+[\w.]*?)-/.exec(name);
  return m ? m[1] : null;
}

export function parseBackupName(name: string): BackupNameInfo {
  let kind: BackupKind = 'other';
  let rest = name;
  if (name.startsWith(RESTORE_POINT_PREFIX)) {
    kind = 'restore-point';
    rest = name.slice(RESTORE_POINT_PREFIX.length);
  } else if (name.startsWith(UPLOADED_PREFIX)) {
    kind = 'uploaded';
    rest = name.slice(UPLOADED_PREFIX.length);
  }
  const routine = ROUTINE.exec(rest);
  if (routine) {
    return { kind: kind === 'other' ? 'routine' : kind, version: routine[2], postgresVersion: routine[3], createdAt: parseTimestamp(routine[1]) };
  }
  const legacy = LEGACY.exec(rest);
  if (legacy) {
    const millis = Number(legacy[1]);
    return { kind: kind === 'other' ? 'routine' : kind, version: null, postgresVersion: null, createdAt: new Date(millis) };
  }
  const pg = /-pg(\d+(?:\.\d+)?)[.-]/.exec(rest);
  return { kind, version: versionIn(rest), postgresVersion: pg ? pg[1] : null, createdAt: null };
}
