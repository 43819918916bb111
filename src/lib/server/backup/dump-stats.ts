/**
 * What a plain SQL dump holds, learnt in one pass as its text streams by (while pg_dump writes
 * it, while an upload arrives, while a file is verified): the rows of every table (counted from
 * its COPY block: one line per row), the uncompressed size, whether it ends with pg_dump's
 * completion line. The text goes through psql's lexer, so a "COPY" inside a string or function
 * body is not taken for one; for a pg_dumpall file only the section a restore loads counts.
 *
 * A table's rows can also be visited one line at a time (`rowVisitor`): the restore preview reads
 * users and assets that way. Tables nobody visits cost one `indexOf` per row.
 */
import { ClusterSections, connectTarget } from '../dump-filter/cluster-sections';
import { PsqlLexer, type LexerSink, type StatementInfo } from '../dump-filter/psql-lexer';
import { tokenize } from '../dump-filter/statement-rules';
import { droppedDatabase, followSetting } from '../dump-filter/lexer-settings';
import { nameParts } from '../dump-filter/statement-rules';

/**
 * pg_dump's (or pg_dumpall's) last lines: the marker, its closing "--", and from 17.6/16.10/15.14 on
 * an `\unrestrict` line; nothing but blank lines after them. Anchored at the end: the same words
 * in a row's data near the end of a file cut short are not the end.
 */
export const END_MARKER = /(^|\n)--[ \t]*PostgreSQL database (cluster )?dump complete[ \t]*\r?\n(--[ \t]*\r?\n)?(\s*\\unrestrict[ \t]+\S+[ \t]*(\r?\n)?)?\s*$/;
/** A row longer than this of a visited table is counted but not visited: memory stays bounded on a hostile file. */
const VISIT_LIMIT = 1024 * 1024;
const TAIL_BYTES = 4096;
const LF = 10;

export interface CopyBlock {
  /** "schema.table" (unquoted parts joined by a dot; a table without schema is "table"). */
  table: string;
  columns: string[];
}

/** Called for each COPY block; returns a function that gets each data line (without its line end, `\.` excluded), or null to only count. */
export type RowVisitor = (block: CopyBlock) => ((line: Buffer) => void) | null;

export interface DumpStatsResult {
  uncompressedSize: number;
  /** Rows per "schema.table", in the order the dump loads them. */
  tables: Record<string, number>;
  /** Ends with "PostgreSQL database [cluster] dump complete". */
  complete: boolean;
  /** A pg_dumpall file (only the instance database's section counted). */
  cluster: boolean;
  /** Rows of visited tables too long to visit (counted in `tables` all the same). */
  skippedRows: number;
}

/** `COPY schema.table (a, b) FROM stdin;` → its table and columns; null when it does not read as one. */
export function copyBlockOf(statement: Buffer): CopyBlock | null {
  const tokens = tokenize(statement.subarray(0, 64 * 1024).toString('utf8'));
  if (!tokens || tokens[0]?.text !== 'copy') return null;
  const found = nameParts(tokens, 1);
  if (!found) return null;
  const columns: string[] = [];
  let i = found.next;
  if (tokens[i]?.kind === 'punct' && tokens[i].text === '(') {
    for (i++; tokens[i] && !(tokens[i].kind === 'punct' && tokens[i].text === ')'); i++) {
      if (tokens[i].kind === 'word' || tokens[i].kind === 'ident') columns.push(tokens[i].text);
    }
    i++;
  }
  if (tokens[i]?.text !== 'from') return null;
  return { table: found.parts.slice(-2).join('.'), columns };
}

export class DumpStats implements LexerSink {
  private readonly lexer = new PsqlLexer(this, 64 * 1024);
  private readonly sections: ClusterSections;
  private readonly tables = new Map<string, number>();
  private bytes = 0;
  private tail: Buffer = Buffer.alloc(0);
  private block: CopyBlock | null = null;
  private inCopy = false;
  private lines = 0;
  private visit: ((line: Buffer) => void) | null = null;
  /** A row split over two chunks (only kept for a visited table). */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** The row being read is over VISIT_LIMIT: its bytes are dropped until its line ends. */
  private oversized = false;
  private skippedRows = 0;
  /** The lexer saw pg_dump's end line as a comment (not inside data or a statement), and nothing but "--" and `\unrestrict` after it. */
  private endSeen = false;
  private ended = false;
  private failure: Error | null = null;

  private readonly rowVisitor?: RowVisitor;
  /** false: only the size and the end line (a file whose rows its manifest already has). */
  private readonly rows: boolean;

  constructor(databaseName: string, options: { rows?: boolean; rowVisitor?: RowVisitor } = {}) {
    this.sections = new ClusterSections(databaseName);
    this.rows = options.rows ?? true;
    this.rowVisitor = options.rowVisitor;
  }

  /** Feeds decompressed text; never throws (a dump the lexer cannot read is counted as far as it went). */
  write(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.tail = chunk.length >= TAIL_BYTES ? chunk.subarray(-TAIL_BYTES) : Buffer.concat([this.tail, chunk]).subarray(-TAIL_BYTES);
    if (this.failure || !this.rows) return;
    try {
      this.lexer.write(chunk);
    } catch (error) {
      this.failure = error as Error;
    }
  }

  end(): DumpStatsResult {
    if (!this.ended && !this.failure && this.rows) {
      try {
        this.lexer.end();
      } catch (error) {
        this.failure = error as Error;
      }
    }
    this.ended = true;
    return this.result();
  }

  result(): DumpStatsResult {
    // A copy of the tail: it may be a view of a buffer the caller reuses.
    return {
      uncompressedSize: this.bytes,
      tables: Object.fromEntries(this.tables),
      // Read through the lexer, the end line must also have been a comment where psql would see one.
      complete: END_MARKER.test(this.tail.toString('latin1')) && (!this.rows || this.failure !== null || this.endSeen),
      cluster: this.sections.cluster,
      skippedRows: this.skippedRows,
    };
  }

  // LexerSink

  text(bytes: Buffer): void {
    if (!this.inCopy || !this.block) return;
    let from = 0;
    for (;;) {
      const nl = bytes.indexOf(LF, from);
      if (nl === -1) break;
      this.lines++;
      if (this.visit) this.line(bytes.subarray(from, nl));
      from = nl + 1;
    }
    if (this.visit && from < bytes.length && !this.oversized) {
      this.partialBytes += bytes.length - from;
      if (this.partialBytes > VISIT_LIMIT) {
        this.oversized = true;
        this.partial = [];
        this.partialBytes = 0;
      } else this.partial.push(Buffer.from(bytes.subarray(from)));
    }
  }

  wants(firstWord: string): boolean {
    return firstWord === 'copy' || firstWord === 'set' || firstWord === 'drop';
  }

  statement(text: Buffer, info: StatementInfo): void {
    this.endSeen = false;
    this.sections.statementSeen();
    if (!this.sections.keep) {
      if (info.firstWord === 'drop') this.listDatabase(text);
      return;
    }
    if (info.firstWord === 'set') this.track(text);
    if (info.firstWord === 'copy' && info.lastWords[1] === 'stdin') this.block = copyBlockOf(text);
  }

  metaLine(line: Buffer): void {
    const m = /^\\(connect|c|restrict|unrestrict)(?:[ \t]+(.*))?$/s.exec(line.toString('utf8'));
    if (m?.[1] !== 'unrestrict') this.endSeen = false;
    if (m?.[1] === 'connect' || m?.[1] === 'c') this.sections.connect(connectTarget(m[2] ?? ''));
    else if (!m) this.sections.statementSeen();
  }

  commentLine(head: string): void {
    this.sections.commentLine(head);
    if (/^--[ \t]*PostgreSQL database (cluster )?dump complete[ \t]*$/.test(head)) this.endSeen = true;
    else if (!/^--[ \t]*$/.test(head)) this.endSeen = false;
  }

  copy(started: boolean): void {
    this.endSeen = false;
    if (started) {
      this.inCopy = true;
      this.lines = 0;
      this.partial = [];
      this.partialBytes = 0;
      this.oversized = false;
      this.visit = this.block ? (this.rowVisitor?.(this.block) ?? null) : null;
      return;
    }
    this.inCopy = false;
    if (!this.block) return;
    // The `\.` line was counted as a line; a last row without its line end was not.
    const rows = Math.max(0, this.lines - 1);
    this.tables.set(this.block.table, (this.tables.get(this.block.table) ?? 0) + rows);
    this.block = null;
    this.visit = null;
    this.partial = [];
  }

  private line(piece: Buffer): void {
    if (this.oversized || (this.partialBytes > 0 && this.partialBytes + piece.length > VISIT_LIMIT)) {
      this.oversized = false;
      this.partial = [];
      this.partialBytes = 0;
      this.skippedRows++;
      return;
    }
    let line = piece;
    if (this.partial.length) {
      line = Buffer.concat([...this.partial, piece]);
      this.partial = [];
      this.partialBytes = 0;
    }
    if (line.length && line[line.length - 1] === 13) line = line.subarray(0, -1);
    // The end-of-data line: not a row.
    if (line.length === 2 && line[0] === 92 && line[1] === 46) return;
    this.visit!(line);
  }

  private track(text: Buffer): void {
    followSetting(this.lexer, text);
  }

  private listDatabase(text: Buffer): void {
    const name = droppedDatabase(text);
    if (name !== null) this.sections.databaseListed(name);
  }
}

/** COPY text format: a field's value (null for \N), with its backslash escapes undone. */
export function copyField(raw: string): string | null {
  if (raw === '\\N') return null;
  if (!raw.includes('\\')) return raw;
  return raw.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_, c: string) => {
    if (c[0] === 'x' && c.length > 1) return String.fromCharCode(parseInt(c.slice(1), 16));
    if (/^[0-7]/.test(c)) return String.fromCharCode(parseInt(c, 8));
    return ({ t: '\t', n: '\n', r: '\r', b: '\b', f: '\f', v: '\v' } as Record<string, string>)[c] ?? c;
  });
}
