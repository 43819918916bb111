import { isAbsolute, join, posix, relative, sep } from 'node:path';
import type { ConsistencyReport } from '../../shared/types';
import type { LibraryContentsRepository } from '../repositories/library-contents.repository';
import type { LibraryFilesRepository } from '../repositories/library-files.repository';
import type { ReadStream, StorageRepository } from '../repositories/storage.repository';
import { MARKER_FILE } from './storage.service';

/** Where the reference server keeps its media inside its container: stored absolute paths start so. */
export const MEDIA_PREFIXES = ['/usr/src/app/upload/', '/data/'];
/** Folders of UPLOAD_LOCATION that hold no library files. */
const NOT_LIBRARY = new Set(['backups', '.lifeboat']);
export const REPORT_FIRST = 100;

/**
 * A stored asset path as a path relative to UPLOAD_LOCATION ("/"-separated), the key both sides
 * are compared by: relative paths as they are, absolute ones inside UPLOAD_LOCATION or under the
 * reference's media folder made relative. Anything else is kept as stored (it can never be on
 * the walked disk, so it counts as missing).
 */
export function libraryKey(stored: string, uploadLocation: string): string {
  if (!isAbsolute(stored)) {
    // The common case costs two includes: normalize only paths that need it.
    return stored.includes('/.') || stored.includes('//') || stored.startsWith('./') ? posix.normalize(stored) : stored;
  }
  const rel = relative(uploadLocation, stored);
  if (!rel.startsWith('..') && !isAbsolute(rel)) return sep === '/' ? rel : rel.split(sep).join('/');
  for (const prefix of MEDIA_PREFIXES) if (stored.startsWith(prefix)) return posix.normalize(stored.slice(prefix.length));
  return stored;
}

/** What the walk of UPLOAD_LOCATION passes over: .immich markers, backups/ and .lifeboat/. */
export function notLibraryFile(relativePath: string, isDirectory: boolean): boolean {
  if (isDirectory) return NOT_LIBRARY.has(relativePath);
  return relativePath === MARKER_FILE || relativePath.endsWith(`/${MARKER_FILE}`);
}

/** The referenced paths on disk, and the files on disk nobody refers to. */
export function compareFiles(referenced: Set<string>, onDisk: Set<string>): { present: number; missing: string[]; untracked: string[] } {
  const missing: string[] = [];
  let present = 0;
  for (const path of referenced) {
    if (onDisk.has(path)) present++;
    else missing.push(path);
  }
  const untracked: string[] = [];
  for (const path of onDisk) if (!referenced.has(path)) untracked.push(path);
  // Code-unit order with a plain comparator: the default sort is several times slower on a million paths.
  const byCodeUnit = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return { present, missing: missing.sort(byCodeUnit), untracked: untracked.sort(byCodeUnit) };
}

export interface ConsistencyDeps {
  uploadLocation: string;
  contents: LibraryContentsRepository;
  files: LibraryFilesRepository;
  storage: StorageRepository;
  /** UPLOAD_LOCATION/.lifeboat: the report outlives a restart and a restore. */
  stateDir: string;
  log: (line: string) => void;
}

/**
 * The files-vs-database report: the live database's asset paths against the files in
 * UPLOAD_LOCATION. Missing: referred to, not on disk. Untracked: on disk, referred to by no
 * asset. Read-only: it never deletes or moves a file. The last report (JSON) and the full lists
 * (CSV) are kept in .lifeboat/.
 */
export class ConsistencyService {
  private running: Promise<ConsistencyReport> | null = null;

  constructor(private readonly deps: ConsistencyDeps) {}

  get reportPath(): string {
    return join(this.deps.stateDir, 'consistency.json');
  }

  get csvPath(): string {
    return join(this.deps.stateDir, 'consistency.csv');
  }

  /** The last report; null when none was made yet. */
  async last(): Promise<ConsistencyReport | null> {
    return this.deps.storage.readJson<ConsistencyReport>(this.reportPath).catch(() => null);
  }

  /** Runs the comparison (a second call while one runs gets the same answer). */
  run(trigger: ConsistencyReport['trigger'] = 'manual', backup: string | null = null): Promise<ConsistencyReport> {
    this.running ??= this.compare(trigger, backup).finally(() => (this.running = null));
    return this.running;
  }

  /** Settles once no comparison runs (one starts after each restore; a benchmark waits for it). */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  /** The CSV of the last report (status,path per line); null when there is none. */
  async csv(): Promise<ReadStream | null> {
    if (!(await this.deps.files.exists(this.csvPath))) return null;
    return this.deps.storage.createReadStream(this.csvPath);
  }

  /** The referenced files of the live database, as library keys. */
  async referencedPaths(): Promise<Set<string>> {
    const referenced = new Set<string>();
    for await (const page of this.deps.contents.assetPaths()) {
      for (const row of page) {
        for (const path of [row.original_path, row.thumbnail_path, row.preview_path, row.encoded_video_path]) {
          if (path) referenced.add(libraryKey(path, this.deps.uploadLocation));
        }
      }
    }
    return referenced;
  }

  /** The files in UPLOAD_LOCATION that can belong to the library. */
  filesOnDisk(): Promise<Set<string>> {
    return this.deps.files.walk(this.deps.uploadLocation, notLibraryFile);
  }

  private async compare(trigger: ConsistencyReport['trigger'], backup: string | null): Promise<ConsistencyReport> {
    const started = Date.now();
    const [referenced, onDisk] = [await this.referencedPaths(), await this.filesOnDisk()];
    const { missing, untracked } = compareFiles(referenced, onDisk);
    const report: ConsistencyReport = {
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date().toISOString(),
      durationMs: Date.now() - started,
      trigger,
      backup,
      referenced: referenced.size,
      onDisk: onDisk.size,
      missing: { count: missing.length, first: missing.slice(0, REPORT_FIRST) },
      untracked: { count: untracked.length, first: untracked.slice(0, REPORT_FIRST) },
    };
    await this.deps.files.ensureDir(this.deps.stateDir);
    await this.deps.files.writeLines(this.csvPath, csvLines(missing, untracked));
    await this.deps.storage.writeJsonAtomic(this.reportPath, report);
    this.deps.log(`Files report: ${missing.length} missing, ${untracked.length} untracked (${referenced.size} referenced, ${onDisk.size} on disk)`);
    return report;
  }
}

function* csvLines(missing: string[], untracked: string[]): Generator<string> {
  yield 'status,path';
  for (const path of missing) yield `missing,${csvField(path)}`;
  for (const path of untracked) yield `untracked,${csvField(path)}`;
}

/** RFC 4180 quoting; a leading =, +, - or @ is prefixed so a spreadsheet does not run it. */
function csvField(value: string): string {
  const safe = /^[=+\-@]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
