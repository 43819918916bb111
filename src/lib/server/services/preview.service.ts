import { join } from 'node:path';
import { parseBackupName } from '../../shared/backup-name';
import type { LibraryContents, RestorePreview } from '../../shared/types';
import { DumpStats, copyField, type CopyBlock } from '../backup/dump-stats';
import { versionFromMigrationRows } from '../backup/dump-version';
import type { BackupManifest } from '../backup/manifest';
import type { Database } from '../db/database';
import { schemaState } from '../db/migrator';
import type { BackupReadRepository } from '../repositories/backup-read.repository';
import type { LibraryContentsRepository } from '../repositories/library-contents.repository';
import type { LibraryFilesRepository } from '../repositories/library-files.repository';
import { compareFiles, libraryKey, type ConsistencyService } from './consistency.service';
import type { DatabaseBackupService } from './database-backup.service';
import type { FileUse } from './file-use';

const TAB = 9;
const PATH_COLUMNS = ['original_path', 'thumbnail_path', 'preview_path', 'encoded_video_path'];
const CACHE_FORMAT = 1;
/** Path lists kept for this many backups (the newest read); older ones are read again from the dump. */
const PATH_LISTS_KEPT = 20;

/** The dump-derived part, cached in the manifest's `preview` field for its SHA-256; the paths are kept beside it in .lifeboat/. */
interface CachedPreview {
  format: number;
  sha256: string;
  backup: LibraryContents;
  referenced: number;
  complete: boolean;
  readAt: string;
}

export interface PreviewDeps {
  backups: DatabaseBackupService;
  reader: BackupReadRepository;
  fileUse: FileUse;
  contents: LibraryContentsRepository;
  files: LibraryFilesRepository;
  consistency: ConsistencyService;
  db: Database;
  /** The instance database: of a pg_dumpall file, only its section counts. */
  databaseName: string;
  uploadLocation: string;
  stateDir: string;
  /** Whether the live database may be read now (not while a restore replaces it). */
  databaseReadable: () => boolean;
}

/**
 * Split the few fields wanted out of one COPY line, without splitting the rest: `wanted` are
 * column indexes in ascending order; the raw text of each is passed on (escapes still in).
 */
export function pickFields(line: Buffer, wanted: number[], take: (slot: number, raw: string) => void): void {
  let column = 0;
  let start = 0;
  let slot = 0;
  while (slot < wanted.length) {
    const end = line.indexOf(TAB, start);
    if (column === wanted[slot]) {
      take(slot, line.toString('utf8', start, end === -1 ? line.length : end));
      slot++;
    }
    if (end === -1) return;
    start = end + 1;
    column++;
  }
}

function tableIs(block: CopyBlock, name: string): boolean {
  return block.table === `public.${name}` || block.table === name;
}

/** Reads a dump once: rows of every table, users and admins, asset paths, the schema version. */
class DumpReading {
  users = 0;
  readonly admins: string[] = [];
  readonly paths = new Set<string>();
  private readonly migrationRows: Array<{ name: string | null; version: string | null }> = [];
  readonly stats: DumpStats;

  constructor(databaseName: string, private readonly uploadLocation: string) {
    this.stats = new DumpStats(databaseName, { rowVisitor: (block) => this.visitor(block) });
  }

  get version(): string | null {
    return versionFromMigrationRows(this.migrationRows);
  }

  private visitor(block: CopyBlock): ((line: Buffer) => void) | null {
    if (tableIs(block, 'users')) {
      const at = ['email', 'is_admin', 'deleted_at'].map((c) => block.columns.indexOf(c));
      if (at.some((i) => i < 0)) return null;
      const order = [...at].sort((a, b) => a - b);
      const slotOf = at.map((i) => order.indexOf(i));
      const fields: string[] = [];
      return (line) => {
        pickFields(line, order, (slot, raw) => (fields[slot] = raw));
        if (fields[slotOf[2]] !== '\\N') return;
        this.users++;
        if (fields[slotOf[1]] === 't') this.admins.push(copyField(fields[slotOf[0]]) ?? '');
      };
    }
    if (tableIs(block, 'assets')) {
      const order = PATH_COLUMNS.map((c) => block.columns.indexOf(c)).filter((i) => i >= 0).sort((a, b) => a - b);
      if (!order.length) return null;
      return (line) =>
        pickFields(line, order, (_slot, raw) => {
          if (raw === '\\N' || raw === '') return;
          this.paths.add(libraryKey(raw.includes('\\') ? copyField(raw)! : raw, this.uploadLocation));
        });
    }
    if (tableIs(block, 'migrations')) {
      const at = [block.columns.indexOf('name'), block.columns.indexOf('version')];
      return (line) => {
        const fields = line.toString('utf8').split('\t');
        this.migrationRows.push({ name: at[0] >= 0 ? copyField(fields[at[0]] ?? '\\N') : null, version: at[1] >= 0 ? copyField(fields[at[1]] ?? '\\N') : null });
      };
    }
    return null;
  }
}

/**
 * The restore preview: what a backup holds beside what the instance holds now, and what it
 * means for the files in UPLOAD_LOCATION. The dump is streamed once (never loaded, never
 * restored); what it says is cached in its manifest for its SHA-256, its asset paths in
 * .lifeboat/preview/. A backup without a manifest is read each time.
 */
export class PreviewService {
  private readonly running = new Map<string, Promise<RestorePreview>>();

  constructor(private readonly deps: PreviewDeps) {}

  /** Checks the name (400) and the file (404) before anything is read. */
  async preview(filename: unknown): Promise<RestorePreview> {
    const path = await this.deps.backups.backupPath(filename);
    const name = filename as string;
    let run = this.running.get(name);
    if (!run) {
      run = this.build(name, path).finally(() => this.running.delete(name));
      this.running.set(name, run);
    }
    return run;
  }

  private get pathListDir(): string {
    return join(this.deps.stateDir, 'preview');
  }

  private async build(filename: string, path: string): Promise<RestorePreview> {
    const manifest = await this.deps.backups.manifests.read(filename);
    const stat = await this.deps.backups.statOf(filename);
    // The cache holds for the file the manifest describes: same SHA-256, same size.
    const usable = manifest && stat && stat.size === manifest.size ? manifest : null;
    // The walk of UPLOAD_LOCATION and the live counts go on while the dump streams.
    const live = Promise.all([this.deps.consistency.filesOnDisk(), this.current()]);
    live.catch(() => undefined);

    let reading = usable ? await this.fromCache(usable) : null;
    const cached = reading !== null;
    if (!reading) {
      reading = await this.read(filename, path, manifest, stat?.mtime ?? null);
      if (usable) await this.store(usable, reading);
    }
    const [onDisk, current] = await live;
    const { present, missing, untracked } = compareFiles(reading.paths, onDisk);
    return {
      filename,
      backup: reading.cache.backup,
      current,
      files: { referenced: reading.paths.size, present, missing: missing.length, untracked: untracked.length },
      cached,
      complete: reading.cache.complete,
      readAt: reading.cache.readAt,
    };
  }

  private async fromCache(manifest: BackupManifest): Promise<{ cache: CachedPreview; paths: Set<string> } | null> {
    const cache = manifest.preview as CachedPreview | undefined;
    if (!cache || cache.format !== CACHE_FORMAT || cache.sha256 !== manifest.sha256) return null;
    const lines = await this.deps.files.readLines(join(this.pathListDir, `${manifest.sha256}.paths.gz`), { gzip: true });
    if (!lines || lines.length !== cache.referenced) return null;
    return { cache, paths: new Set(lines) };
  }

  private async read(filename: string, path: string, manifest: BackupManifest | null, mtime: Date | null) {
    const reading = new DumpReading(this.deps.databaseName, this.deps.uploadLocation);
    const release = this.deps.fileUse.acquire(filename, 'a restore preview');
    let complete = true;
    try {
      await this.deps.reader.read(path, { onTextChunk: (chunk) => reading.stats.write(chunk) });
    } catch {
      // A damaged file: what could be read is shown, marked incomplete (verification says why).
      complete = false;
    } finally {
      release();
    }
    const result = reading.stats.end();
    const tables = result.tables;
    const cache: CachedPreview = {
      format: CACHE_FORMAT,
      sha256: manifest?.sha256 ?? '',
      backup: {
        version: reading.version ?? manifest?.appVersion ?? parseBackupName(filename).version,
        date: manifest?.createdAt ?? parseBackupName(filename).createdAt?.toISOString() ?? mtime?.toISOString() ?? null,
        users: { count: reading.users, admins: reading.admins.sort() },
        assets: tables['public.assets'] ?? tables.assets ?? 0,
        albums: tables['public.albums'] ?? tables.albums ?? 0,
        tables,
      },
      referenced: reading.paths.size,
      complete: complete && result.complete,
      readAt: new Date().toISOString(),
    };
    return { cache, paths: reading.paths };
  }

  /** Paths first, then the manifest: a manifest never points at a list that is not there. */
  private async store(manifest: BackupManifest, reading: { cache: CachedPreview; paths: Set<string> }): Promise<void> {
    if (!reading.cache.complete) return;
    await this.deps.files.ensureDir(this.pathListDir);
    await this.deps.files.writeLines(join(this.pathListDir, `${manifest.sha256}.paths.gz`), reading.paths, { gzip: true });
    await this.deps.backups.manifests.update(manifest.filename, (m) => (m.sha256 === manifest.sha256 ? { ...m, preview: reading.cache } : m));
    await this.prune();
  }

  private async prune(): Promise<void> {
    const lists = (await this.deps.files.listWithTimes(this.pathListDir)).sort((a, b) => b.mtimeMs - a.mtimeMs);
    for (const old of lists.slice(PATH_LISTS_KEPT)) await this.deps.files.removeOwnFile(join(this.pathListDir, old.name));
  }

  /** The live instance, read the same way; null when its database cannot be read now. */
  private async current(): Promise<LibraryContents | null> {
    if (!this.deps.databaseReadable()) return null;
    try {
      const [state, users, tables] = await Promise.all([
        this.deps.db.withClient((client) => schemaState(client)),
        this.deps.contents.users(),
        this.deps.contents.tableRows(),
      ]);
      return {
        version: state.version,
        date: new Date().toISOString(),
        users,
        assets: tables['public.assets'] ?? 0,
        albums: tables['public.albums'] ?? 0,
        tables,
      };
    } catch {
      return null;
    }
  }
}
