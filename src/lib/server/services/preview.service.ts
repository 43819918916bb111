import { endianness } from 'node:os';
import { join } from 'node:path';
import { parseBackupName } from '../../shared/backup-name';
import type { LibraryContents, RestorePreview } from '../../shared/types';
import { DumpStats, copyField, type CopyBlock } from '../backup/dump-stats';
import type { StatementInfo } from '../dump-filter/psql-lexer';
import { versionFromMigrationRows } from '../backup/dump-version';
import type { BackupManifest } from '../backup/manifest';
import type { Database } from '../db/database';
import { schemaState } from '../db/migrator';
import type { BackupReadRepository } from '../repositories/backup-read.repository';
import type { LibraryContentsRepository } from '../repositories/library-contents.repository';
import type { LibraryFilesRepository } from '../repositories/library-files.repository';
import { MEDIA_PREFIXES, libraryKey, type ConsistencyService } from './consistency.service';
import type { DatabaseBackupService } from './database-backup.service';
import type { FileUse } from './file-use';

const TAB = 9;
const SLASH = 47;
const DOT = 46;
const BACKSLASH = 92;
const PATH_COLUMNS = ['original_path', 'thumbnail_path', 'preview_path', 'encoded_video_path'];
const CACHE_FORMAT = 3;
/** Path lists kept for this many backups (the newest read); older ones are read again from the dump. */
const PATH_LISTS_KEPT = 20;

/** The dump-derived part, cached in the manifest's `preview` field for its SHA-256; its path keys (PathKeySet) in .lifeboat/preview/<sha256>.paths. */
interface CachedPreview {
  format: number;
  sha256: string;
  backup: LibraryContents;
  referenced: number;
  complete: boolean;
  doubt: string | null;
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
  log: (line: string) => void;
}

/**
 * Finds the few fields wanted in one COPY line without splitting the rest: `wanted` are column
 * indexes in ascending order; each field is passed on as a byte range (escapes still in).
 */
export function fieldRanges(line: Buffer, wanted: number[], take: (slot: number, start: number, end: number) => void): void {
  let column = 0;
  let start = 0;
  let slot = 0;
  while (slot < wanted.length) {
    const end = line.indexOf(TAB, start);
    if (column === wanted[slot]) {
      take(slot, start, end === -1 ? line.length : end);
      slot++;
    }
    if (end === -1) return;
    start = end + 1;
    column++;
  }
}

/** The same, as text. */
export function pickFields(line: Buffer, wanted: number[], take: (slot: number, raw: string) => void): void {
  fieldRanges(line, wanted, (slot, start, end) => take(slot, line.toString('utf8', start, end)));
}

/** Where a key's high half sits in a pair of 32-bit words, so that the pair read as one 64-bit number sorts by (hi, lo). */
const HI = endianness() === 'LE' ? 1 : 0;
const LO = 1 - HI;

/**
 * A set of library paths kept as 64-bit hashes (two 32-bit lanes) in one typed array: a million
 * paths cost 8 MB and no garbage-collected strings, which is what keeps the preview near the
 * speed of gunzip. Keys are appended while the dump streams (sequential writes), then sorted
 * natively and made unique once; lookups are binary searches. The sorted keys are the cache.
 * Two different paths share a hash with odds of about 1 in 10^7 for a million paths: the
 * preview's counts are then off by one, which a preview can afford (the files report after a
 * restore compares the paths themselves).
 */
export class PathKeySet {
  private words: Uint32Array;
  private length = 0;
  private sorted = true;

  constructor(expected = 0) {
    this.words = new Uint32Array(Math.max(1024, expected) * 2);
  }

  add(hi: number, lo: number): void {
    if (this.length * 2 === this.words.length) {
      const bigger = new Uint32Array(this.words.length * 2);
      bigger.set(this.words);
      this.words = bigger;
    }
    this.words[this.length * 2 + HI] = hi;
    this.words[this.length * 2 + LO] = lo;
    this.length++;
    this.sorted = false;
  }

  /** Distinct keys. */
  get size(): number {
    this.finish();
    return this.length;
  }

  has(hi: number, lo: number): boolean {
    this.finish();
    const words = this.words;
    let low = 0;
    let high = this.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const h = words[mid * 2 + HI];
      const l = words[mid * 2 + LO];
      if (h === hi && l === lo) return true;
      if (h < hi || (h === hi && l < lo)) low = mid + 1;
      else high = mid - 1;
    }
    return false;
  }

  hasPath(path: string): boolean {
    const bytes = Buffer.from(path, 'utf8');
    hashKey(bytes, 0, bytes.length);
    return this.has(keyHi, keyLo);
  }

  /** The sorted distinct keys, for the cache. */
  toBytes(): Uint8Array {
    this.finish();
    return new Uint8Array(this.words.buffer, 0, this.length * 8);
  }

  /** Keys written by toBytes() (sorted and distinct already). */
  static fromBytes(bytes: Buffer): PathKeySet {
    const set = new PathKeySet(0);
    set.words = new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    set.length = set.words.length / 2;
    return set;
  }

  private finish(): void {
    if (this.sorted) return;
    const keys = new BigUint64Array(this.words.buffer, 0, this.length);
    keys.sort();
    let unique = 0;
    for (let i = 0; i < this.length; i++) {
      if (unique > 0 && this.words[i * 2] === this.words[(unique - 1) * 2] && this.words[i * 2 + 1] === this.words[(unique - 1) * 2 + 1]) continue;
      this.words[unique * 2] = this.words[i * 2];
      this.words[unique * 2 + 1] = this.words[i * 2 + 1];
      unique++;
    }
    this.length = unique;
    this.sorted = true;
  }
}

let keyHi = 0;
let keyLo = 0;
/**
 * Hashes bytes [start, end) into keyHi/keyLo: FNV-1a per byte, and a second lane per 4-byte word
 * (murmur's mix), so a byte costs one multiply. False when a byte asks for the careful path
 * (`careful`: a backslash escape, "/." or "//").
 */
function hashKey(bytes: Buffer, start: number, end: number, careful = false): boolean {
  let a = 0x811c9dc5;
  let b = 0x9747b28c ^ (end - start);
  let word = 0;
  let previous = 0;
  for (let i = start; i < end; i++) {
    const c = bytes[i];
    if (careful && (c === BACKSLASH || (previous === SLASH && (c === DOT || c === SLASH)))) return false;
    a = Math.imul(a ^ c, 0x01000193);
    word = (word << 8) | c;
    if (((i - start) & 3) === 3) {
      b = Math.imul(b ^ Math.imul(word, 0xcc9e2d51), 0x1b873593);
      b = (b << 13) | (b >>> 19);
      word = 0;
    }
    previous = c;
  }
  b = Math.imul(b ^ word, 0x5bd1e995);
  b ^= b >>> 13;
  b = Math.imul(b, 0xc2b2ae35);
  b ^= b >>> 16;
  keyHi = a >>> 0;
  keyLo = b >>> 0;
  return true;
}

/**
 * Adds one stored path (the raw bytes of a COPY field) to the set, as its libraryKey. The common
 * cases (relative, or under UPLOAD_LOCATION or the reference's media folder, nothing to
 * normalize) are hashed from the bytes in place; anything else goes through libraryKey.
 */
export class PathKeyer {
  private readonly prefixes: Buffer[];

  constructor(private readonly uploadLocation: string) {
    this.prefixes = [`${uploadLocation.replace(/\/+$/, '')}/`, ...MEDIA_PREFIXES].map((p) => Buffer.from(p, 'utf8'));
  }

  add(set: PathKeySet, line: Buffer, start: number, end: number): void {
    if (end <= start) return;
    let from = start;
    if (line[start] === SLASH) {
      from = -1;
      for (const prefix of this.prefixes) {
        if (end - start > prefix.length && line.compare(prefix, 0, prefix.length, start, start + prefix.length) === 0) {
          from = start + prefix.length;
          break;
        }
      }
    } else if (line[start] === DOT && line[start + 1] === SLASH) {
      from = -1;
    }
    if (from >= 0 && line[from] !== SLASH && line[end - 1] !== SLASH && hashKey(line, from, end, true)) {
      set.add(keyHi, keyLo);
      return;
    }
    const raw = line.toString('utf8', start, end);
    if (raw === '\\N') return;
    const key = Buffer.from(libraryKey(copyField(raw) ?? '', this.uploadLocation), 'utf8');
    hashKey(key, 0, key.length);
    set.add(keyHi, keyLo);
  }
}

/** Statements that change rows as psql runs them; pg_dump writes none of them besides its own SELECTs. */
const CHANGES_ROWS = new Set(['insert', 'update', 'delete', 'merge', 'truncate', 'do', 'call', 'execute', 'prepare', 'with', 'select', 'create']);
const PG_DUMP_SELECT = /^\s*select\s+pg_catalog\.(set_config|setval)\s*\(/i;
const TRIGGER_OR_RULE = /^\s*create\s+(or\s+replace\s+)?(constraint\s+)?(trigger|rule)\b/i;

/**
 * DumpStats that also notices what would make its reading differ from what psql loads: a
 * statement that changes rows (INSERT, UPDATE, DO, a SELECT that is not pg_dump's own), or a
 * trigger or rule made before a COPY. The preview then says it cannot tell, rather than show
 * counts a restore would not give.
 */
class PreviewStats extends DumpStats {
  doubt: string | null = null;
  private triggerBeforeData = false;

  override wants(firstWord: string): boolean {
    return super.wants(firstWord) || CHANGES_ROWS.has(firstWord);
  }

  override statement(text: Buffer, info: StatementInfo): void {
    if (!CHANGES_ROWS.has(info.firstWord) || super.wants(info.firstWord)) return super.statement(text, info);
    // What DumpStats would have been given had the statement not been captured.
    super.text(text);
    const head = text.subarray(0, 256).toString('utf8');
    if (info.firstWord === 'create') {
      if (TRIGGER_OR_RULE.test(head)) this.triggerBeforeData = true;
      return;
    }
    if (info.firstWord === 'select' && PG_DUMP_SELECT.test(head)) return;
    this.doubt ??= `the dump runs statements that change rows besides its COPY data (${info.firstWord.toUpperCase()})`;
  }

  override copy(started: boolean): void {
    if (started && this.triggerBeforeData) this.doubt ??= 'the dump makes a trigger or rule before loading data';
    super.copy(started);
  }
}

function tableIs(block: CopyBlock, name: string): boolean {
  return block.table === `public.${name}` || block.table === name;
}

/** Reads a dump once: rows of every table, users and admins, asset paths, the schema version. */
class DumpReading {
  users = 0;
  readonly admins: string[] = [];
  readonly paths: PathKeySet;
  private readonly keyer: PathKeyer;
  private readonly migrationRows: Array<{ name: string | null; version: string | null }> = [];
  readonly stats: PreviewStats;
  /** Why the counts may not be what a restore loads (see PreviewStats). */
  doubt: string | null = null;

  /** `expectedPaths`: from the manifest's asset rows, so the set is made once at its size. */
  constructor(databaseName: string, uploadLocation: string, expectedPaths = 0) {
    this.paths = new PathKeySet(expectedPaths);
    this.keyer = new PathKeyer(uploadLocation);
    this.stats = new PreviewStats(databaseName, { rowVisitor: (block) => this.visitor(block) });
  }

  private line: Buffer | null = null;

  get version(): string | null {
    return versionFromMigrationRows(this.migrationRows);
  }

  private visitor(block: CopyBlock): ((line: Buffer) => void) | null {
    if (tableIs(block, 'users')) {
      const at = ['email', 'is_admin', 'deleted_at'].map((c) => block.columns.indexOf(c));
      if (at.some((i) => i < 0)) {
        this.doubt ??= 'its COPY of users does not name the columns the preview reads';
        return null;
      }
      const order = [...at].sort((a, b) => a - b);
      const slotOf = at.map((i) => order.indexOf(i));
      const fields: string[] = [];
      return (line) => {
        fields.length = 0;
        pickFields(line, order, (slot, raw) => (fields[slot] = raw));
        if (fields[slotOf[2]] !== '\\N') return;
        this.users++;
        if (fields[slotOf[1]] === 't') this.admins.push(copyField(fields[slotOf[0]]) ?? '');
      };
    }
    if (tableIs(block, 'assets')) {
      const order = PATH_COLUMNS.map((c) => block.columns.indexOf(c)).filter((i) => i >= 0).sort((a, b) => a - b);
      if (!order.length) {
        this.doubt ??= 'its COPY of assets does not name the file path columns';
        return null;
      }
      const take = (_slot: number, start: number, end: number) => this.keyer.add(this.paths, this.line!, start, end);
      return (line) => {
        this.line = line;
        fieldRanges(line, order, take);
      };
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
  /** Caches being written after their answer went out; a next preview of the same file waits for it. */
  private readonly storing = new Map<string, Promise<void>>();

  constructor(private readonly deps: PreviewDeps) {}

  /** Checks the name (400) and the file (404) before anything is read. */
  async preview(filename: unknown): Promise<RestorePreview> {
    const path = await this.deps.backups.backupPath(filename);
    const name = filename as string;
    let run = this.running.get(name);
    if (!run) {
      run = Promise.resolve(this.storing.get(name))
        .then(() => this.build(name, path))
        .finally(() => this.running.delete(name));
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
      // The answer does not wait for the cache to be written.
      if (usable) this.storeLater(usable, reading);
    }
    const [onDisk, current] = await live;
    let present = 0;
    for (const file of onDisk) if (reading.paths.hasPath(file)) present++;
    return {
      filename,
      backup: reading.cache.backup,
      current,
      files: { referenced: reading.paths.size, present, missing: reading.paths.size - present, untracked: onDisk.size - present },
      cached,
      complete: reading.cache.complete,
      doubt: reading.cache.doubt ?? null,
      readAt: reading.cache.readAt,
    };
  }

  private pathListOf(sha256: string): string {
    return join(this.pathListDir, `${sha256}.paths`);
  }

  private async fromCache(manifest: BackupManifest): Promise<{ cache: CachedPreview; paths: PathKeySet } | null> {
    const cache = manifest.preview as CachedPreview | undefined;
    if (!cache || cache.format !== CACHE_FORMAT || cache.sha256 !== manifest.sha256) return null;
    const bytes = await this.deps.files.readBytes(this.pathListOf(manifest.sha256));
    if (!bytes || bytes.length !== cache.referenced * 8) return null;
    return { cache, paths: PathKeySet.fromBytes(bytes) };
  }

  private async read(filename: string, path: string, manifest: BackupManifest | null, mtime: Date | null) {
    const assets = manifest?.tables['public.assets'] ?? 0;
    const reading = new DumpReading(this.deps.databaseName, this.deps.uploadLocation, Math.min(assets * PATH_COLUMNS.length, 64_000_000));
    const release = this.deps.fileUse.acquire(filename, 'a restore preview');
    let doubt: string | null = null;
    try {
      await this.deps.reader.read(path, { onTextChunk: (chunk) => reading.stats.write(chunk) });
    } catch {
      // A damaged file: what could be read is shown, marked incomplete (verification says why).
      doubt = 'the file could not be read to its end: it is damaged, and the counts stop where it broke';
    } finally {
      release();
    }
    const result = reading.stats.end();
    doubt ??= reading.doubt ?? reading.stats.doubt;
    if (!result.complete) doubt ??= "the dump does not end with pg_dump's completion line";
    if (result.skippedRows) doubt ??= 'rows of users or assets too long to read';
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
      complete: doubt === null,
      doubt,
      readAt: new Date().toISOString(),
    };
    return { cache, paths: reading.paths };
  }

  /** Resolves once no cache is being written (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.storing.size) await Promise.all(this.storing.values());
  }

  private storeLater(manifest: BackupManifest, reading: { cache: CachedPreview; paths: PathKeySet }): void {
    const done = this.store(manifest, reading)
      .catch((error) => this.deps.log(`The restore preview of ${manifest.filename} was not cached: ${(error as Error).message}`))
      .finally(() => {
        if (this.storing.get(manifest.filename) === done) this.storing.delete(manifest.filename);
      });
    this.storing.set(manifest.filename, done);
  }

  /** Paths first, then the manifest: a manifest never points at a list that is not there. */
  private async store(manifest: BackupManifest, reading: { cache: CachedPreview; paths: PathKeySet }): Promise<void> {
    if (!reading.cache.complete) return;
    await this.deps.files.ensureDir(this.pathListDir);
    await this.deps.files.writeBytes(this.pathListOf(manifest.sha256), reading.paths.toBytes());
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
