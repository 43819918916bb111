/**
 * The schema version a dump holds, read from its contents when its name does not say (uploads,
 * hand-copied files). The authority is what the migrator itself reads after a restore: the rows of
 * the `migrations` table (name, version). A dump without them may still carry the
 * `version-history` row of `system_metadata`. The file is streamed through psql's lexer (so a
 * "COPY" inside a string or a function body is not taken for one) and reading stops as soon as
 * the migrations block has ended. For a pg_dumpall dump, only the section a restore would load
 * (the instance database's) counts.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { fileIsGzip } from './dump-sniff';
import { ClusterSections, connectTarget } from '../dump-filter/cluster-sections';
import { PsqlLexer, type LexerSink, type StatementInfo } from '../dump-filter/psql-lexer';
import { tokenize } from '../dump-filter/statement-rules';
import { droppedDatabase, followSetting } from '../dump-filter/lexer-settings';
import { migrations as knownMigrations } from '../db/migrations';
import { compareVersions } from '../../shared/version';

/** A migrations table of a real instance has a few rows of ~60 bytes: more than this is not one. */
const BLOCK_LIMIT = 1024 * 1024;
const VERSION = /^v?(\d+\.\d+\.\d+[\w.-]*)$/;

type Block = 'migrations' | 'system_metadata';

/** `COPY [public.]migrations (name, version, executed_at) FROM stdin;` → the table and its columns. */
function copyTarget(statement: string): { table: Block; columns: string[] } | null {
  const m = /^\s*COPY\s+(?:"?public"?\s*\.\s*)?"?(migrations|system_metadata)"?\s*\(([^)]*)\)\s*FROM\s+stdin\s*;?\s*$/i.exec(statement);
  if (!m) return null;
  return { table: m[1].toLowerCase() as Block, columns: m[2].split(',').map((c) => c.trim().replace(/^"|"$/g, '').toLowerCase()) };
}

/** COPY text format: backslash escapes for the few characters versions and names could hold. */
function copyField(raw: string): string | null {
  if (raw === '\\N') return null;
  return raw.replace(/\\(.)/g, (_, c: string) => ({ t: '\t', n: '\n', r: '\r', b: '\b', f: '\f', v: '\v' })[c] ?? c);
}

function newest(versions: Iterable<string | null | undefined>): string | null {
  let best: string | null = null;
  for (const v of versions) {
    const m = v ? VERSION.exec(v.trim()) : null;
    if (m && (best === null || compareVersions(m[1], best) > 0)) best = m[1];
  }
  return best;
}

/** The schema version the migrations rows say: their version column, or the version of each name this app knows. */
export function versionFromMigrationRows(rows: Array<{ name: string | null; version: string | null }>): string | null {
  const byName = new Map(knownMigrations.map((m) => [m.name, m.version]));
  return newest(rows.map((row) => row.version ?? (row.name ? byName.get(row.name) : null)));
}

/** `[{"version": "1.0.0", ...}, ...]`, as the migrator appends to system_metadata's version-history. */
export function versionFromHistory(json: string): string | null {
  try {
    const history = JSON.parse(json) as unknown;
    if (!Array.isArray(history)) return null;
    return newest(history.map((entry) => (typeof entry?.version === 'string' ? entry.version : null)));
  } catch {
    return null;
  }
}

/** The rows of `(...), (...)` after VALUES: quoted strings ('' doubled) as text, NULL as null, anything else as written. */
export function valueLists(text: string): Array<Array<string | null>> {
  const rows: Array<Array<string | null>> = [];
  let i = 0;
  const space = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  for (;;) {
    space();
    if (text[i] !== '(') return rows;
    i++;
    const row: Array<string | null> = [];
    for (;;) {
      space();
      if (text[i] === "'") {
        let value = '';
        for (i++; i < text.length; i++) {
          if (text[i] !== "'") value += text[i];
          else if (text[i + 1] === "'") value += text[i++];
          else break;
        }
        i++;
        // A cast (`'...'::jsonb`) or anything else up to the next comma belongs to this value.
        while (i < text.length && text[i] !== ',' && text[i] !== ')') i++;
        row.push(value);
      } else {
        const start = i;
        while (i < text.length && text[i] !== ',' && text[i] !== ')') i++;
        const word = text.slice(start, i).trim();
        row.push(/^null$/i.test(word) ? null : word);
      }
      if (text[i] === ',') i++;
      else break;
    }
    if (text[i] !== ')') return rows;
    i++;
    rows.push(row);
    space();
    if (text[i] !== ',') return rows;
    i++;
  }
}

/** The lexer's sink: watches the COPY blocks of the two tables in the section a restore loads. */
class VersionSink implements LexerSink {
  readonly lexer = new PsqlLexer(this, 64 * 1024);
  readonly sections: ClusterSections;
  fromMigrations: string | null = null;
  fromHistory: string | null = null;
  /** The migrations block has been read: nothing later can change the answer. */
  done = false;
  private insertedMigrations = false;
  private block: { table: Block; columns: string[] } | null = null;
  private data: Buffer[] = [];
  private bytes = 0;

  constructor(databaseName: string) {
    this.sections = new ClusterSections(databaseName);
  }

  text(bytes: Buffer): void {
    if (!this.block) return;
    this.bytes += bytes.length;
    if (this.bytes <= BLOCK_LIMIT) this.data.push(bytes);
  }

  wants(firstWord: string): boolean {
    return firstWord === 'copy' || firstWord === 'set' || firstWord === 'drop' || firstWord === 'insert';
  }

  statement(text: Buffer, info: StatementInfo): void {
    this.sections.statementSeen();
    // INSERTs of the migrations table are over once any other statement follows them.
    if (this.insertedMigrations && info.firstWord !== 'insert') this.done = true;
    if (!this.sections.keep) {
      if (info.firstWord === 'drop') this.listDatabase(text);
      return;
    }
    if (info.firstWord === 'set') this.track(text);
    if (info.firstWord === 'copy') this.block = copyTarget(text.toString('utf8'));
    if (info.firstWord === 'insert') this.insert(text.toString('utf8'));
  }

  metaLine(line: Buffer): void {
    const m = /^\\(connect|c|restrict|unrestrict)(?:[ \t]+(.*))?$/s.exec(line.toString('utf8'));
    // As in the restore filter: \restrict lines (around pg_dump's header) are not content.
    if (m?.[1] === 'connect' || m?.[1] === 'c') this.sections.connect(connectTarget(m[2] ?? ''));
    else if (!m) this.sections.statementSeen();
  }

  commentLine(head: string): void {
    this.sections.commentLine(head);
  }

  copy(started: boolean): void {
    if (started || !this.block) return;
    const { table, columns } = this.block;
    this.block = null;
    const overflow = this.bytes > BLOCK_LIMIT;
    const lines = Buffer.concat(this.data).toString('utf8').split('\n');
    this.data = [];
    this.bytes = 0;
    if (overflow) return;
    const rows = lines
      .map((line) => line.replace(/\r$/, ''))
      .filter((line) => line !== '' && line !== '\\.')
      .map((line) => line.split('\t').map(copyField));
    const at = (name: string) => columns.indexOf(name);
    if (table === 'migrations') {
      this.fromMigrations = versionFromMigrationRows(rows.map((r) => ({ name: r[at('name')] ?? null, version: at('version') >= 0 ? (r[at('version')] ?? null) : null })));
      this.done = true;
    } else if (at('key') >= 0 && at('value') >= 0) {
      const history = rows.find((r) => r[at('key')] === 'version-history');
      if (history?.[at('value')]) this.fromHistory = versionFromHistory(history[at('value')]!);
    }
  }

  /** pg_dump --inserts / --column-inserts: `INSERT INTO public.migrations [(cols)] VALUES ('name', 'version', ...)[, (...)];` */
  private insert(sql: string): void {
    const m = /^\s*INSERT\s+INTO\s+(?:"?public"?\s*\.\s*)?"?(migrations|system_metadata)"?\s*(?:\(([^)]*)\))?\s*VALUES\s*/i.exec(sql);
    if (!m) return;
    const table = m[1].toLowerCase();
    const columns = m[2] ? m[2].split(',').map((c) => c.trim().replace(/^"|"$/g, '').toLowerCase()) : table === 'migrations' ? ['name', 'version', 'executed_at'] : ['key', 'value'];
    const rows = valueLists(sql.slice(m[0].length));
    const at = (name: string) => columns.indexOf(name);
    if (table === 'migrations') {
      const version = versionFromMigrationRows(rows.map((r) => ({ name: r[at('name')] ?? null, version: at('version') >= 0 ? (r[at('version')] ?? null) : null })));
      // Each row may be its own statement: keep the newest so far.
      this.fromMigrations = newest([this.fromMigrations, version]);
      this.insertedMigrations = true;
    } else {
      const history = rows.find((r) => r[at('key')] === 'version-history');
      if (history?.[at('value')]) this.fromHistory = versionFromHistory(history[at('value')]!);
    }
  }

  private track(text: Buffer): void {
    followSetting(this.lexer, text);
  }

  private listDatabase(text: Buffer): void {
    const name = droppedDatabase(text);
    if (name !== null) this.sections.databaseListed(name);
  }

  get version(): string | null {
    return this.fromMigrations ?? this.fromHistory;
  }
}

/**
 * Reads decompressed dump text until the schema version is known or the input ends. Does not
 * destroy `input`: the caller owns it. Null when the dump does not say.
 */
export async function readDumpVersion(input: AsyncIterable<Buffer | string>, options: { databaseName: string }): Promise<string | null> {
  const sink = new VersionSink(options.databaseName);
  try {
    for await (const chunk of input) {
      sink.lexer.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      if (sink.done) return sink.version;
    }
    sink.lexer.end();
  } catch (error) {
    // A cluster dump without the wanted database, or with several candidates: its version cannot be told.
    if (error instanceof Error && /cluster dump/.test(error.message)) return null;
    throw error;
  }
  return sink.version;
}


/** The version inside a backup file (plain or gzip). A damaged archive tells nothing: null, not an error. */
export async function readDumpFileVersion(path: string, options: { databaseName: string }): Promise<string | null> {
  const gzip = await fileIsGzip(path);
  const source = createReadStream(path, { highWaterMark: 256 * 1024 });
  const text: Readable = gzip ? source.pipe(createGunzip({ chunkSize: 256 * 1024 })) : source;
  // pipe() does not pass the source's errors on: a read error must end the loop below too.
  if (gzip) source.on('error', (error) => text.destroy(error));
  try {
    return await readDumpVersion(text, options);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code?.startsWith('Z_')) return null;
    throw error;
  } finally {
    source.destroy();
    text.destroy();
  }
}

/**
 * Versions read from contents, by file name + size + modification time: a listing reads each file
 * once, and reads it again only if it was replaced. Concurrent listings share one read.
 */
export class DumpVersionCache {
  private readonly entries = new Map<string, Promise<string | null>>();

  constructor(
    private readonly databaseName: string,
    private readonly read: typeof readDumpFileVersion = readDumpFileVersion,
  ) {}

  async versionOf(path: string, identity?: { size: number; mtimeMs: number }): Promise<string | null> {
    const { size, mtimeMs } = identity ?? (await stat(path));
    const key = `${path}\0${size}\0${mtimeMs}`;
    let entry = this.entries.get(key);
    if (!entry) {
      // Another identity of the same path is a replaced file: forget it.
      for (const old of this.entries.keys()) if (old.startsWith(`${path}\0`)) this.entries.delete(old);
      const reading = this.read(path, { databaseName: this.databaseName });
      // A read that failed (file removed or unreadable mid-read) says nothing now and is tried again next time.
      entry = reading.catch(() => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        return null;
      });
      this.entries.set(key, entry);
    }
    return entry;
  }

  /** Drops entries of files no longer listed. */
  retain(paths: Set<string>): void {
    for (const key of this.entries.keys()) if (!paths.has(key.slice(0, key.indexOf('\0')))) this.entries.delete(key);
  }
}
