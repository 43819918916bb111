import { Writable } from 'node:stream';
import { PsqlLexer, type LexerSink, type StatementInfo } from '../dump-filter/psql-lexer';
import { followSetting } from '../dump-filter/lexer-settings';
import { copyTable, tokenize } from '../dump-filter/statement-rules';

/**
 * Where the parts of a plain dump go, in the order psql would have read them: the pre-data (all
 * up to the first `COPY ... FROM stdin`), each COPY block (its statement, rows and `\.` line), and
 * the rest (sequence values, then the post-data: indexes, constraints, triggers, privileges).
 * Every method may wait (backpressure).
 */
export interface SplitSink {
  pre(bytes: Buffer): Promise<void>;
  /** The first COPY block starts (or the input ended without one): the pre-data is complete. */
  preEnd(): Promise<void>;
  /** A COPY block; `settings` are the session settings (SET, set_config) in force where it stands. */
  blockStart(copy: Buffer, table: string | null, settings: string[]): Promise<void>;
  block(bytes: Buffer): Promise<void>;
  blockEnd(): Promise<void>;
  rest(bytes: Buffer): Promise<void>;
  end(): Promise<void>;
}

type Op = () => Promise<void>;

/**
 * Splits the filtered dump (the exact bytes psql would read) with the same lexer as the filter.
 * It decides nothing about safety: every part still goes to psql in restricted mode as the
 * unprivileged role. A file that makes it misjudge a boundary only changes the order parts run in.
 */
export class DumpSplitter extends Writable implements LexerSink {
  private readonly lexer = new PsqlLexer(this);
  private ops: Op[] = [];
  private phase: 'pre' | 'rest' = 'pre';
  private inBlock = false;
  /** COPY rows of a statement too long to capture: they stay where the statement went. */
  private inlineCopy = false;
  readonly settings = new SessionSettings();

  constructor(private readonly sink: SplitSink) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      this.lexer.write(chunk);
    } catch (error) {
      return callback(error as Error);
    }
    this.drain().then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.lexer.end();
    } catch (error) {
      return callback(error as Error);
    }
    if (this.phase === 'pre') this.ops.push(() => this.sink.preEnd());
    this.ops.push(() => this.sink.end());
    this.drain().then(() => callback(), callback);
  }

  // LexerSink: called synchronously by the lexer; the work is queued and done in order by drain().
  text(bytes: Buffer): void {
    this.send(bytes);
  }

  wants(firstWord: string): boolean {
    return firstWord === 'copy' || firstWord === 'set' || firstWord === 'select' || firstWord === 'reset';
  }

  statement(text: Buffer, info: StatementInfo): void {
    if (info.firstWord === 'copy' && info.lastWords[0] === 'from' && info.lastWords[1] === 'stdin') {
      if (this.phase === 'pre') {
        this.phase = 'rest';
        this.ops.push(() => this.sink.preEnd());
      }
      this.inBlock = true;
      const settings = this.settings.current();
      const table = copyTable(text);
      this.ops.push(() => this.sink.blockStart(text, table, settings));
      return;
    }
    if (info.firstWord === 'set' || info.firstWord === 'select') this.settings.note(text);
    // As the filter before it: the client encoding and string syntax psql reads the rest with.
    if (info.firstWord === 'set' || info.firstWord === 'reset') followSetting(this.lexer, text);
    this.send(text);
  }

  metaLine(line: Buffer, eol: string): void {
    this.send(Buffer.concat([line, Buffer.from(eol)]));
  }

  copy(started: boolean): void {
    if (started) {
      if (!this.inBlock) this.inlineCopy = true;
      return;
    }
    if (this.inlineCopy) this.inlineCopy = false;
    else if (this.inBlock) {
      this.inBlock = false;
      this.ops.push(() => this.sink.blockEnd());
    }
  }

  private send(bytes: Buffer): void {
    if (!bytes.length) return;
    if (this.inBlock) this.ops.push(() => this.sink.block(bytes));
    else if (this.phase === 'pre') this.ops.push(() => this.sink.pre(bytes));
    else this.ops.push(() => this.sink.rest(bytes));
  }

  private async drain(): Promise<void> {
    const ops = this.ops;
    this.ops = [];
    for (const op of ops) await op();
  }
}

/**
 * The session settings a dump makes (SET and set_config), the last value of each: a part run on
 * another connection replays them first, as psql reading the whole file would have had them.
 */
export class SessionSettings {
  private readonly values = new Map<string, string>();
  private snapshot: string[] = [];

  note(statement: Buffer): void {
    if (statement.length > 4096) return;
    const text = statement.toString('utf8').trim();
    let name: string | undefined;
    const call = SET_CONFIG.exec(text);
    if (call) {
      // Only pg_dump's own form, and session-wide (is_local false): any other SELECT runs once, where it stands.
      if (call[2].toLowerCase() !== 'false') return;
      name = call[1].toLowerCase();
    } else {
      const tokens = tokenize(text) ?? [];
      if (tokens[0]?.text !== 'set') return;
      // SET LOCAL ends with its transaction; SET SESSION AUTHORIZATION / ROLE are left out by the filter or refused by the role.
      if (tokens[1]?.text === 'local') return;
      name = tokens[tokens[1]?.text === 'session' ? 2 : 1]?.text;
    }
    if (!name || (!this.values.has(name) && this.values.size >= 64)) return;
    this.values.set(name, text.endsWith(';') ? text : `${text};`);
    this.snapshot = [...this.values.values()];
  }

  /** Shared until the next change: many parts carry the same list. */
  current(): string[] {
    return this.snapshot;
  }
}

const SET_CONFIG = /^SELECT\s+(?:pg_catalog\.)?set_config\s*\(\s*'((?:[^']|'')*)'\s*,\s*'(?:[^']|'')*'\s*,\s*(true|false)\s*\)\s*;?$/is;

