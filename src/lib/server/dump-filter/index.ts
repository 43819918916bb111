/**
 * The restore filter, between the gunzipped dump and psql (which runs in restricted mode as an
 * unprivileged role: those are the security boundary, not this). It passes every byte through
 * unchanged except whole statements the app does itself or that cannot apply here (see
 * statement-rules.ts), the dump's `\connect`, `\restrict` and `\unrestrict` lines (the app
 * connects psql and restricts it with its own key), and the sections of other databases in a
 * pg_dumpall dump. What it leaves out becomes as many newlines, so psql's line numbers stay the
 * dump's. Its memory is bounded whatever the input.
 */
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { ClusterSections, connectTarget } from './cluster-sections';
import { followSetting, SET_CONFIG_WORDS, UnfollowedSettingError } from './lexer-settings';
import { LexerRefusal, PsqlLexer, type LexerSink, type StatementInfo } from './psql-lexer';
import { CANDIDATE_WORDS, copyTable, createdTable, decide, freezeCopy, tokenize, type DumpExtensionRef, type SkipCategory } from './statement-rules';

export { DisallowedExtensionError } from './statement-rules';
export { UnfollowedSettingError } from './lexer-settings';

export interface RestoreFilterOptions {
  /** The instance database: for cluster dumps only its section is kept. */
  databaseName: string;
  /** Roles on this server: GRANT/REVOKE naming others are left out. */
  existingRoles: ReadonlySet<string>;
  /** Extensions a dump may ask for; any other fails the restore. */
  allowedExtensions: ReadonlySet<string>;
  /** Schemas the app made for extensions before the load: the dump's CREATE/DROP SCHEMA of them are left out. */
  preparedSchemas?: ReadonlySet<string>;
  /**
   * The dump runs in one transaction that makes the tables it fills (a staged database, or in place
   * after the schema reset): a COPY into a table created earlier in this stream is run WITH (FREEZE).
   * Its rows are then written frozen and visible to all, so that the keys, indexes and foreign keys
   * built next and every reader after the restore need no visibility check or hint-bit write per row.
   * PostgreSQL refuses FREEZE (an error, the load rolls back) for a table not created in the transaction.
   */
  freezeCopies?: boolean;
  onNotice?: (message: string) => void;
  /** Once, at the end. */
  onSummary?: (summary: FilterSummary) => void;
}

export interface FilterSummary {
  skipped: Record<SkipCategory, number>;
  /** Distinct roles named by GRANT/REVOKE statements that were left out. */
  missingRoles: string[];
  extensions: DumpExtensionRef[];
  cluster: boolean;
}

const LF = 10;
/** Statements that may change how psql reads what follows (see followSetting). */
const FOLLOWED_WORDS: ReadonlySet<string> = new Set(['set', 'reset', 'rollback', 'update', ...SET_CONFIG_WORDS]);
/**
 * What a statement longer than the lexer's capture limit may create: the objects whose definitions
 * can honestly grow that long (routine bodies, views, wide tables). Never one the rules act on.
 */
const LONG_CREATE_OBJECTS: ReadonlySet<string> = new Set(['function', 'procedure', 'aggregate', 'view', 'materialized', 'recursive', 'table', 'unlogged', 'type', 'domain', 'index', 'unique', 'trigger', 'constraint', 'rule', 'policy']);
/** First words of the statements that may be that long; others the rules act on must be seen whole. */
const LONG_WORDS: ReadonlySet<string> = new Set(['create', 'comment', 'copy', ...SET_CONFIG_WORDS]);
/** In a joined query (see judgeJoined): statements that change the transaction, the settings psql reads by, or its input. */
const JOINED_REFUSED: ReadonlySet<string> = new Set(['begin', 'start', 'commit', 'end', 'rollback', 'abort', 'prepare', 'savepoint', 'release', 'set', 'reset', 'copy', 'discard']);
/** Bounds the filter's memory: the tables of any real dump, and at most a few MB of names. */
const MAX_CREATED_TABLES = 20_000;

/** The lexer's sink: applies the rules and the cluster sections, writing to `push`. */
class FilterCore implements LexerSink {
  readonly lexer: PsqlLexer;
  readonly sections: ClusterSections;
  readonly summary: FilterSummary = {
    skipped: { extension: 0, owner: 0, role: 0, database: 0, grant: 0, schema: 0, transaction: 0 },
    missingRoles: [],
    extensions: [],
    cluster: false,
  };
  /** Tables a CREATE TABLE of this stream made (freezeCopies), up to MAX_CREATED_TABLES. */
  private readonly created = new Set<string>();
  /** What psql reads by where the chosen section was left (see section()). */
  private keptSettings: PsqlLexer['settings'] = { encoding: '', standardStrings: true };
  /** Set by scanDumpHead: called with each statement's first word, may stop the scan. */
  onStatement: ((info: StatementInfo, inChosen: boolean) => void) | null = null;

  constructor(
    private readonly options: RestoreFilterOptions,
    private readonly push: (bytes: Buffer) => void,
  ) {
    this.lexer = new PsqlLexer(this);
    this.sections = new ClusterSections(options.databaseName, options.onNotice);
  }

  text(bytes: Buffer): void {
    if (this.sections.keep) this.push(bytes);
    else this.newlines(countNewlines(bytes));
  }

  wants(firstWord: string): boolean {
    return this.judged(firstWord) || this.onStatement !== null;
  }

  statement(text: Buffer, info: StatementInfo): void {
    this.sections.statementSeen();
    // Other sections of a cluster dump never reach psql: what they set is followed, never refused.
    if (FOLLOWED_WORDS.has(info.firstWord) || info.suspect) followSetting(this.lexer, text, this.sections.keep);
    if (info.firstWord === 'drop' && !this.sections.keep) this.listDatabase(text);
    this.onStatement?.(info, this.sections.keep);
    // Other databases' sections of a cluster dump are only read, never judged.
    if (!this.sections.keep) return this.text(text);
    if (info.joins.length) this.judgeJoined(text, info.joins);
    if (info.firstWord === 'copy') return this.text(this.frozen(text, info) ?? text);
    if (this.options.freezeCopies && info.firstWord === 'create' && this.created.size < MAX_CREATED_TABLES) {
      const table = createdTable(text);
      if (table) this.created.add(table);
    }
    const decision = decide(text, {
      existingRoles: this.options.existingRoles,
      allowedExtensions: this.options.allowedExtensions,
      preparedSchemas: this.options.preparedSchemas ?? new Set(),
    });
    if (decision.action === 'keep') return this.text(text);
    if (decision.action === 'rewrite') return this.push(decision.text);
    this.newlines(countNewlines(text));
    this.summary.skipped[decision.category]++;
    for (const role of decision.missingRoles ?? []) if (!this.summary.missingRoles.includes(role)) this.summary.missingRoles.push(role);
    if (decision.extension && !this.summary.extensions.some((e) => e.name === decision.extension!.name)) this.summary.extensions.push(decision.extension);
  }

  /**
   * A statement the lexer could not capture whole is judged by its head (it may be long only if
   * the rules would keep it) and, at its end, by what the lexer marked (LexerSink).
   */
  overflow(head: Buffer, info: StatementInfo): void {
    if (!this.sections.keep || !this.judged(info.firstWord)) return;
    const tokens = tokenize(head.toString('utf8'), { prefix: true }) ?? [];
    const word = (i: number) => (tokens[i]?.kind === 'word' ? tokens[i].text : undefined);
    const object = info.firstWord === 'create' ? (word(1) === 'or' && word(2) === 'replace' ? word(3) : word(1)) : undefined;
    const long =
      LONG_WORDS.has(info.firstWord) &&
      !info.suspect &&
      !(info.firstWord === 'create' && !(object && LONG_CREATE_OBJECTS.has(object))) &&
      !(info.firstWord === 'comment' && !(word(1) === 'on' && tokens.length > 3 && word(2) !== 'database' && word(2) !== 'extension')) &&
      !(info.firstWord === 'prepare' && word(1) === 'transaction');
    if (info.suspect) throw new UnfollowedSettingError(`${info.firstWord.toUpperCase()} statement longer than ${head.length >> 20} MiB naming set_config or U&"..."`);
    if (!long) throw new LexerRefusal(`${info.firstWord.toUpperCase() || 'a'} statement longer than ${head.length >> 20} MiB of a kind Lifeboat reads whole`);
  }

  uncaptured(info: StatementInfo): void {
    if (this.sections.keep && info.suspect) throw new UnfollowedSettingError(`${info.firstWord.toUpperCase() || 'a'} statement calling set_config or naming U&"..."`);
  }

  metaLine(line: Buffer, eol: string): void {
    const text = line.toString('utf8');
    const match = /^\\([A-Za-z]+)(?:[ \t]+(.*))?$/s.exec(text);
    const command = match?.[1];
    if (command === 'connect' || command === 'c') this.section(() => this.sections.connect(connectTarget(match?.[2] ?? '')));
    if (command === 'connect' || command === 'c' || command === 'restrict' || command === 'unrestrict') {
      this.newlines(eol.endsWith('\n') ? 1 : 0);
      return;
    }
    // Any other meta-command goes to psql as it is: in restricted mode psql refuses it.
    this.sections.statementSeen();
    this.onStatement?.({ firstWord: '\\', lastWords: ['', ''], suspect: false, overflowed: false, joins: [] }, this.sections.keep);
    this.text(Buffer.concat([line, Buffer.from(eol)]));
  }

  commentLine(head: string): void {
    this.section(() => this.sections.commentLine(head));
  }

  finish(): void {
    this.sections.finish();
    this.summary.cluster = this.sections.cluster;
  }

  /**
   * A COPY into a table this stream created, WITH (FREEZE) (see freezeCopies). Only when the lexer
   * takes rows to follow it (it ends `FROM stdin`), as psql will when the server accepts it.
   */
  private frozen(text: Buffer, info: StatementInfo): Buffer | null {
    if (!this.options.freezeCopies || info.lastWords[0] !== 'from' || info.lastWords[1] !== 'stdin') return null;
    const table = copyTable(text);
    return table && this.created.has(table) ? freezeCopy(text) : null;
  }

  /**
   * A statement psql sends as one query with the statements after its inner `;` (StatementInfo.joins):
   * where the server's grammar ends a BEGIN ATOMIC body before psql's count does (`AS case`, a routine
   * named begin, a label end), those run as statements of their own. None may end the transaction,
   * change settings or psql's input, or be one the rules would leave out; only the last `END` of a
   * BEGIN ATOMIC body may close it.
   */
  private judgeJoined(text: Buffer, joins: number[]): void {
    const refuse = (piece: string) => {
      throw new LexerRefusal(`statements psql joins into one query after a BEGIN it counts (${piece.trim().slice(0, 60).replace(/\s+/g, ' ')})`);
    };
    // Only a body the server opens itself (BEGIN ATOMIC) has an END of its own to close it.
    const head = tokenize(text.subarray(0, joins[0]).toString('utf8'), { prefix: true }) ?? [];
    const atomic = head.some((token, i) => token.kind === 'word' && token.text === 'begin' && head[i + 1]?.kind === 'word' && head[i + 1].text === 'atomic');
    for (let k = 0; k < joins.length; k++) {
      const piece = text.subarray(joins[k] + 1, joins[k + 1] === undefined ? text.length : joins[k + 1] + 1);
      const tokens = tokenize(piece.toString('utf8')) ?? [];
      const first = tokens[0]?.kind === 'word' ? tokens[0].text : '';
      if (atomic && k === joins.length - 1 && first === 'end' && tokens.length <= 2) continue;
      if (!first || JOINED_REFUSED.has(first)) refuse(piece.toString('latin1'));
      // Anything the rules would leave out at top level is refused here: the role owns the database, so
      // a database setting, grant or comment would stay (helper-20).
      if (decide(piece, { existingRoles: this.options.existingRoles, allowedExtensions: this.options.allowedExtensions, preparedSchemas: this.options.preparedSchemas ?? new Set() }).action !== 'keep') refuse(piece.toString('latin1'));
      followSetting(this.lexer, piece, true);
    }
  }

  /** Statements the rules act on or that may change psql's reading: captured, to be seen whole. */
  private judged(firstWord: string): boolean {
    return CANDIDATE_WORDS.has(firstWord) || FOLLOWED_WORDS.has(firstWord) || firstWord === 'copy';
  }

  /**
   * A change of section: psql, which gets only the chosen database's section, reads its next part
   * with the settings its last part left, whatever the sections between set.
   */
  private section(change: () => void): void {
    const kept = this.sections.keep;
    change();
    if (kept && !this.sections.keep) this.keptSettings = this.lexer.settings;
    else if (!kept && this.sections.keep) this.lexer.settings = this.keptSettings;
  }

  private listDatabase(text: Buffer): void {
    const tokens = tokenize(text.toString('utf8')) ?? [];
    if (tokens[1]?.text !== 'database') return;
    const at = tokens[2]?.text === 'if' && tokens[3]?.text === 'exists' ? 4 : 2;
    const name = tokens[at];
    if (name && (name.kind === 'word' || name.kind === 'ident')) this.sections.databaseListed(name.text);
  }

  private newlines(count: number): void {
    if (count > 0) this.push(Buffer.alloc(count, LF));
  }
}

export class RestoreFilter extends Transform {
  private readonly core: FilterCore;
  private out: Buffer[] = [];

  constructor(private readonly options: RestoreFilterOptions) {
    super();
    this.core = new FilterCore(options, (bytes) => this.out.push(bytes));
  }

  /**
   * The stream's work without the stream, for a caller that moves the bytes itself: the text
   * `chunk` becomes (views of it valid only as long as it is; the filter copies what it keeps).
   */
  filterChunk(chunk: Buffer): Buffer[] {
    this.core.lexer.write(chunk);
    return this.taken();
  }

  /** The end of the input: the rest of the text; throws if the dump ends where it may not. */
  finishText(): Buffer[] {
    this.core.lexer.end();
    this.core.finish();
    const rest = this.taken();
    this.options.onSummary?.(this.core.summary);
    return rest;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.pushAll(this.filterChunk(chunk));
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.pushAll(this.finishText());
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  private taken(): Buffer[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  private pushAll(out: Buffer[]): void {
    if (out.length === 1) this.push(out[0]);
    else if (out.length > 1) this.push(Buffer.concat(out));
  }
}

export function createRestoreFilter(options: RestoreFilterOptions): RestoreFilter {
  return new RestoreFilter(options);
}

/** Statements that come before a dump's first object: the scan of a dump's head reads past them. */
const HEAD_WORDS = new Set(['set', 'select', 'drop', 'create', 'alter', 'comment', 'grant', 'revoke', 'update', '\\']);

/**
 * The extensions a dump asks for, read from its head (pg_dump writes them after the SET lines,
 * the DROPs of --clean and the schemas), stopping at the first statement of the chosen database
 * that makes anything else. Throws DisallowedExtensionError for one outside the allow-list.
 */
export async function scanDumpHead(input: Readable, options: RestoreFilterOptions): Promise<{ extensions: DumpExtensionRef[]; cluster: boolean }> {
  const core = new FilterCore(options, () => undefined);
  let done = false;
  core.onStatement = (info, inChosen) => {
    if (!inChosen || !HEAD_WORDS.has(info.firstWord)) {
      if (inChosen) done = true;
      return;
    }
  };
  // CREATE of anything but a schema or an extension ends the head too.
  const decideHead = core.statement.bind(core);
  core.statement = (text, info) => {
    decideHead(text, info);
    if (core.sections.keep && (info.firstWord === 'create' || info.firstWord === 'alter')) {
      const tokens = tokenize(text.toString('utf8').slice(0, 200)) ?? [];
      const object = tokens[1]?.text;
      if (object !== 'schema' && object !== 'extension' && !(info.firstWord === 'alter' && tokens.at(-3)?.text === 'owner')) done = true;
    }
  };
  for await (const chunk of input) {
    core.lexer.write(chunk as Buffer);
    if (done) break;
  }
  if (!done) core.lexer.end();
  return { extensions: core.summary.extensions, cluster: core.sections.cluster };
}

function countNewlines(buf: Buffer): number {
  let count = 0;
  for (let i = buf.indexOf(LF); i !== -1; i = buf.indexOf(LF, i + 1)) count++;
  return count;
}
