/**
 * The restore filter: a faithful, bounded rewriter between the (gunzipped) dump and psql.
 *
 * Security is not its job: the caller puts its own `\restrict KEY` line in front (psql
 * then refuses every other backslash command) and psql runs as an unprivileged role.
 * The filter only leaves out what that role may not or must not run (statement-rules),
 * the dump's own \connect/\restrict/\unrestrict lines, and in a pg_dumpall dump every
 * section but the chosen database's (cluster-sections). Every other byte passes
 * unchanged; a left-out statement becomes as many LFs as it had, so psql's line
 * numbers are the dump's.
 *
 * Memory stays bounded: a statement is held back only while the rules may still skip
 * or rewrite it, and at most MAX_HELD bytes (then it is kept and streams through).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { ClusterSections } from './cluster-sections';
import { PsqlLexer, type LexedStatement, type LexerHandler, type Token } from './psql-lexer';
import {
  cookTokens,
  isPreambleStatement,
  judgeStatement,
  STATEMENT_VERBS,
  type DumpExtension,
  type RuleContext,
  type SkipCategory,
  type Verdict,
} from './statement-rules';

export { ExtensionNotAllowedError, type DumpExtension, type SkipCategory } from './statement-rules';

export interface RestoreFilterOptions {
  /** The database being restored; picks the section of a cluster dump. */
  databaseName: string;
  /** Roles this server has: GRANTs to others are left out. */
  existingRoles: ReadonlySet<string>;
  /** Extensions a dump may need (created by the caller beforehand); any other is an error. */
  allowedExtensions: ReadonlySet<string>;
  /** Schemas the app created before the load: the dump's CREATE/DROP SCHEMA of them are left out. */
  preparedSchemas?: ReadonlySet<string>;
  onNotice?(message: string): void;
  /** Called once, after the last byte. */
  onSummary?(summary: RestoreFilterSummary): void;
}

export interface RestoreFilterSummary {
  /** Statements read in the restored part of the dump (all of it, or the chosen section). */
  statements: number;
  /** Statements left out, per reason. */
  skipped: Record<SkipCategory, number>;
  /** search_path resets rewritten. */
  rewritten: number;
  /** Distinct grantees of left-out GRANTs/REVOKEs that this server does not have. */
  missingRoles: string[];
  /** CREATE EXTENSION statements seen (and left out). */
  extensions: DumpExtension[];
  /** \connect, \c, \restrict and \unrestrict lines left out. */
  metaCommandsDropped: number;
  cluster: boolean;
  /** The section restored from a cluster dump. */
  database: string | null;
}

export interface DumpHead {
  extensions: DumpExtension[];
  cluster: boolean;
  database: string | null;
  /** The settings in force where the scan stopped. */
  standardConformingStrings: boolean;
  clientEncoding: string;
  /** The whole dump was read (nothing but preamble statements). */
  complete: boolean;
}

export function createRestoreFilter(options: RestoreFilterOptions): Transform {
  return new RestoreFilter(options);
}

/**
 * Reads the head of a dump with the same parser, without output, and stops (destroying
 * the source) at the first statement of the restored part that is not preamble:
 * settings, drops, schemas, extensions, roles, databases. Throws what the filter would
 * (an extension that is not allowed, a cluster dump without the database).
 */
export async function scanDumpHead(
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  options: Omit<RestoreFilterOptions, 'onSummary'>,
): Promise<DumpHead> {
  const reader = new DumpReader(options, false);
  let complete = true;
  for await (const chunk of source) {
    reader.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (reader.stopped) {
      complete = false;
      break; // ends the iteration: a stream is destroyed
    }
  }
  if (complete) reader.end();
  return {
    extensions: reader.summary.extensions,
    cluster: reader.summary.cluster,
    database: reader.summary.database,
    standardConformingStrings: reader.lexer.standardConformingStrings,
    clientEncoding: reader.lexer.clientEncoding,
    complete,
  };
}

class RestoreFilter extends Transform {
  private readonly reader: DumpReader;

  constructor(private readonly options: RestoreFilterOptions) {
    super();
    this.reader = new DumpReader(options, true);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.pushAll(this.reader.write(chunk));
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.pushAll(this.reader.end());
      this.options.onSummary?.(this.reader.summary);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  private pushAll(out: Buffer[]): void {
    if (out.length === 1) this.push(out[0]);
    else if (out.length > 1) this.push(Buffer.concat(out));
  }
}

/** Bytes of a statement held back while the rules may still leave it out or rewrite it. */
const MAX_HELD = 64 * 1024;
/** psql's meta-commands that the filter leaves out (the caller connects and restricts psql itself). */
const DROPPED_META = new Set(['connect', 'c', 'restrict', 'unrestrict']);
const LF = 0x0a;
const EMPTY = Buffer.alloc(0);
const NEWLINES = Buffer.alloc(4096, LF);

// Where the bytes being read go.
const GAP = 0; // between statements: whitespace, -- comments
const HOLD = 1; // a statement the rules have not decided yet
const KEEP = 2;
const SKIP = 3; // a left-out statement: only its LFs
const META_HOLD = 4; // a backslash command until its name is known
const META_DROP = 5;
const META_KEEP = 6;
const COPY_DATA = 7;

/** Drives the lexer and applies the rules; `output` false: read only (scanDumpHead). */
class DumpReader implements LexerHandler {
  readonly lexer: PsqlLexer;
  readonly summary: RestoreFilterSummary = {
    statements: 0,
    skipped: { database: 0, extension: 0, owner: 0, role: 0, grant: 0, schema: 0 },
    rewritten: 0,
    missingRoles: [],
    extensions: [],
    metaCommandsDropped: 0,
    cluster: false,
    database: null,
  };
  /** scanDumpHead: a statement that ends the head was read. */
  stopped = false;
  private readonly sections: ClusterSections;
  private readonly context: RuleContext;
  private buf: Buffer = EMPTY;
  private cursor = 0; // bytes of buf before this were routed
  private carry: Buffer | null = null;
  private out: Buffer[] = [];
  private outStart = 0; // the last piece of out is buf[outStart, outEnd) (outEnd -1: it is not)
  private outEnd = -1;
  private mode = GAP;
  private resume = GAP; // the mode after a backslash command or COPY data
  private held: Buffer[] = [];
  private heldBytes = 0;
  private prefix: Verdict = { action: 'undecided', untilEnd: false };
  private sawContent = false;
  private command = '';
  private readonly missing = new Set<string>();

  constructor(
    options: Omit<RestoreFilterOptions, 'onSummary'>,
    private readonly output: boolean,
  ) {
    this.lexer = new PsqlLexer(this);
    this.sections = new ClusterSections(options.databaseName, options.onNotice);
    this.context = {
      existingRoles: options.existingRoles,
      allowedExtensions: options.allowedExtensions,
      preparedSchemas: options.preparedSchemas ?? new Set(),
    };
  }

  write(chunk: Buffer): Buffer[] {
    // psql reads lines with fgets and strlen: it would silently cut a line at a NUL.
    const nul = chunk.indexOf(0);
    if (nul >= 0) throw new Error('The dump contains a NUL byte, which psql would not read as written; it is not a text SQL dump.');
    return this.lex(this.carry ? Buffer.concat([this.carry, chunk]) : chunk, false);
  }

  end(): Buffer[] {
    const out = this.lex(this.carry ?? EMPTY, true);
    this.sections.finish();
    this.summary.cluster = this.sections.isCluster;
    this.summary.database = this.sections.database;
    return out;
  }

  private lex(buf: Buffer, final: boolean): Buffer[] {
    this.buf = buf;
    this.cursor = 0;
    this.out = [];
    this.outEnd = -1;
    const used = this.lexer.scan(buf, final);
    this.route(used);
    this.carry = used < buf.length ? Buffer.from(buf.subarray(used)) : null;
    this.summary.cluster = this.sections.isCluster;
    this.summary.database = this.sections.database;
    return this.out;
  }

  // ------------------------------------------------------------ lexer events

  wantsTokens(firstWord: string): boolean {
    return STATEMENT_VERBS.has(firstWord);
  }

  statementStart(at: number): void {
    this.route(at);
    this.sawContent = true;
    this.mode = HOLD;
    this.prefix = { action: 'undecided', untilEnd: false };
  }

  token(_token: Token, tokens: readonly Token[]): void {
    if (this.mode !== HOLD || !this.output || !this.sections.keep) return;
    if (this.prefix.action === 'undecided' && this.prefix.untilEnd) return;
    this.prefix = judgeStatement(cookTokens(tokens), this.context, { complete: false });
    if (this.prefix.action === 'keep') this.release(KEEP);
    else if (this.prefix.action === 'skip') this.release(SKIP);
  }

  statementEnd(end: number, statement: LexedStatement): void {
    this.route(end);
    const tokens = cookTokens(statement.tokens);
    const kept = this.sections.keep;
    this.sections.statement(tokens);
    const mode = this.mode;
    this.mode = GAP;
    if (!kept) return;
    this.summary.statements++;
    const text = mode === HOLD && this.output ? Buffer.concat(this.held) : undefined;
    let verdict = judgeStatement(tokens, this.context, { complete: true, truncated: statement.truncated, text });
    if (!this.output) {
      this.record(verdict);
      if (!isPreambleStatement(tokens)) this.stopped = true;
      return;
    }
    // What was decided early stands: its bytes are gone already.
    if (mode === KEEP) verdict = { action: 'keep' };
    else if (mode === SKIP && verdict.action !== 'skip') verdict = this.prefix;
    this.record(verdict);
    if (mode !== HOLD) return;
    if (verdict.action === 'rewrite') {
      this.release(META_DROP);
      this.emit(verdict.replacement);
    } else this.release(verdict.action === 'skip' ? SKIP : KEEP);
    this.mode = GAP;
  }

  metaStart(at: number): void {
    this.route(at);
    this.sawContent = true;
    // A statement cut by a backslash command goes on as it is (psql's restricted mode refuses the command).
    if (this.mode === HOLD) this.release(KEEP);
    this.resume = this.lexer.inStatement ? this.mode : GAP;
    this.mode = META_HOLD;
  }

  metaName(at: number, name: string): void {
    this.route(at);
    this.command = name;
    this.release(DROPPED_META.has(name) ? META_DROP : META_KEEP);
  }

  metaEnd(end: number, line: string): void {
    this.route(end);
    if (DROPPED_META.has(this.command)) {
      if (this.sections.keep) this.summary.metaCommandsDropped++;
      if (this.command === 'connect' || this.command === 'c') this.sections.connect(line);
    }
    this.mode = this.resume;
  }

  lineComment(end: number, text: string): void {
    this.route(end);
    this.sections.comment(text, !this.sawContent);
    // Only a cluster dump's section headers matter once something else was read.
    if (this.sawContent && !this.sections.isCluster) this.lexer.captureComments = false;
  }

  copyStart(at: number): void {
    this.route(at);
    if (this.mode === HOLD) this.release(KEEP); // held bytes must not be passed after the data
    this.resume = this.mode;
    this.mode = COPY_DATA;
  }

  copyEnd(end: number): void {
    this.route(end);
    this.mode = this.resume;
  }

  // ------------------------------------------------------------ output

  /** Sends buf[cursor, to) where the current mode says. */
  private route(to: number): void {
    const from = this.cursor;
    if (to <= from) return;
    this.cursor = to;
    if (!this.output) return;
    if (!this.sections.keep) return this.newlines(countLines(this.buf.subarray(from, to)));
    switch (this.mode) {
      case HOLD:
      case META_HOLD:
        this.held.push(Buffer.from(this.buf.subarray(from, to))); // a copy: chunks are not kept alive
        this.heldBytes += to - from;
        if (this.mode === HOLD && this.heldBytes > MAX_HELD) this.release(KEEP);
        break;
      case SKIP:
        this.newlines(countLines(this.buf.subarray(from, to)));
        break;
      case META_DROP:
        break; // the line's LF is not part of it
      default:
        // Adjacent kept ranges become one slice: most chunks go out as a single subarray.
        if (this.outEnd === from) this.out[this.out.length - 1] = this.buf.subarray(this.outStart, to);
        else {
          this.out.push(this.buf.subarray(from, to));
          this.outStart = from;
        }
        this.outEnd = to;
    }
  }

  private emit(bytes: Buffer): void {
    this.out.push(bytes);
    this.outEnd = -1;
  }

  /** Decides what happens to the held bytes and to the rest of the statement or command. */
  private release(mode: number): void {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    this.mode = mode;
    if (mode === KEEP || mode === META_KEEP) for (const part of held) this.emit(part);
    else if (mode === SKIP) for (const part of held) this.newlines(countLines(part));
  }

  private newlines(count: number): void {
    for (; count > 0; count -= NEWLINES.length) this.emit(NEWLINES.subarray(0, Math.min(count, NEWLINES.length)));
  }

  private record(verdict: Verdict): void {
    if (verdict.action === 'rewrite') this.summary.rewritten++;
    if (verdict.action !== 'skip') return;
    this.summary.skipped[verdict.category]++;
    for (const role of verdict.missingRoles ?? []) {
      if (!this.missing.has(role) && this.missing.size < 1000) {
        this.missing.add(role);
        this.summary.missingRoles.push(role);
      }
    }
    const extension = verdict.extension;
    if (extension && !this.summary.extensions.some((e) => e.name === extension.name)) this.summary.extensions.push(extension);
  }
}

function countLines(part: Buffer): number {
  let count = 0;
  for (let i = part.indexOf(LF); i >= 0; i = part.indexOf(LF, i + 1)) count++;
  return count;
}
