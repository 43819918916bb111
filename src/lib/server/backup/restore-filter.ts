/**
 * Restore stream filter: sits between the (gunzipped) dump and
 * psql (one transaction, `-v ON_ERROR_STOP=1 --no-psqlrc`), connected to the
 * database being restored (the instance's, or a staged restore's new one).
 *
 * Dumps may be uploaded, so they are hostile input. psql runs a backslash
 * meta-command (`\! cmd` runs a shell on this host) wherever its lexer sees a
 * backslash outside quotes and comments, so the filter lexes every byte of SQL
 * exactly as psql (>= 14) would, and refuses anything it cannot read the same
 * way psql does. COPY data is passed through untouched; only line ends are found.
 *
 * What it changes (the output keeps the input's line numbers, so psql errors
 * point at the right line of the dump):
 * - `SELECT pg_catalog.set_config('search_path', '', false);` gets the
 *   reference CLI recipe's `'public, pg_catalog', true` (old dumps need it).
 * - `\connect` lines are dropped: the restore is one session, already connected.
 * - `CREATE/ALTER/DROP DATABASE`, `COMMENT ON DATABASE`, `GRANT/REVOKE ... ON
 *   DATABASE`, `UPDATE pg_catalog.pg_database` are dropped: the live database
 *   stays as it is.
 * - Role statements on the connecting role are dropped (psql cannot drop the
 *   role it runs as); other `DROP ROLE`s are dropped; other `CREATE ROLE`s are
 *   wrapped so that an existing role is not an error (restoring twice works);
 *   `ALTER ROLE x IN DATABASE y` is kept only for the instance database.
 * - Plain string literals with a backslash right before a quote are rewritten
 *   to the equivalent `U&'...'` form (see lexQuote for why).
 * - CRLF line ends become LF.
 *
 * Cluster dumps (pg_dumpall, recognised by the header comment) keep the
 * globals (roles, rewritten as above) and only the section of `databaseName`.
 * If the dump has no such database but names exactly one database other than
 * template0/template1/postgres in its `DROP DATABASE` list (dumps made with
 * --clean), that database's section is restored instead: old instances used
 * other names. onNotice reports it.
 *
 * On an error the caller must kill psql: psql commits what it has read when
 * its stdin simply ends. No byte of the chunk that holds the offending line is
 * passed on.
 *
 * Limits: this stops psql-side escapes. SQL run as a superuser can still do
 * anything on the database server (dynamic SQL can build `COPY ... PROGRAM`),
 * so only a restore as a non-superuser makes a hostile dump harmless there.
 */
import { Transform, type TransformCallback } from 'node:stream';

export class UnsafeDumpError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(message);
    this.name = 'UnsafeDumpError';
  }
}

export interface RestoreFilterOptions {
  /** Role psql connects as; statements acting on it are dropped. */
  connectingRole: string;
  /** The instance database; for cluster dumps only this database's section is kept. */
  databaseName: string;
  /** Called once at the end of the stream. */
  onStats?: (s: { lines: number; statements: number }) => void;
  /** Things worth a line in the restore log (e.g. which cluster section was chosen). */
  onNotice?: (message: string) => void;
}

export function createRestoreFilter(options: RestoreFilterOptions): Transform {
  return new RestoreFilter(options);
}

const LF = 10;
const CR = 13;
const TAB = 9;
const FF = 12;
const SPACE = 32;
const DQ = 34; // "
const DOLLAR = 36;
const AMP = 38; // &
const QUOTE = 39; // '
const LPAREN = 40;
const RPAREN = 41;
const STAR = 42;
const PLUS = 43;
const DASH = 45;
const DOT = 46;
const SLASH = 47;
const COLON = 58;
const SEMI = 59;
const EQUALS = 61;
const BACKSLASH = 92;
const LBRACE = 123;
// First letters of PSQL_TRACKED_WORDS.
const C_ = 0x63;
const F_ = 0x66;
const O_ = 0x6f;
const P_ = 0x70;
const R_ = 0x72;

const NEWLINE = Buffer.from('\n');
const END_OF_COPY = Buffer.from('\\.\n');
const SEARCH_PATH_ORIGINAL = Buffer.from("SELECT pg_catalog.set_config('search_path', '', false);");
const SEARCH_PATH_REWRITTEN = Buffer.from("SELECT pg_catalog.set_config('search_path', 'public, pg_catalog', true);");
const SYSTEM_DATABASES = new Set(['template0', 'template1', 'postgres']);
const ROLE_WORDS = new Set(['role', 'user', 'group']);
/** `ALTER ROLE <these>` acts on the session's own role. */
const SELF_ROLE_WORDS = new Set(['all', 'current_user', 'session_user', 'current_role']);
/** Words psql remembers to spot `CREATE [OR REPLACE] FUNCTION|PROCEDURE`. */
const PSQL_TRACKED_WORDS = new Set(['create', 'function', 'procedure', 'or', 'replace']);
const MAX_TOKENS = 24;

// Lexer states.
const NORMAL = 0;
const PLAIN_STRING = 1; // '...' : psql reads it with or without backslash escapes (standard_conforming_strings)
const ESCAPE_STRING = 2; // E'...'
const UNICODE_STRING = 3; // U&'...' : '' doubles, backslash is never an escape for the lexer
const BIT_STRING = 4; // B'...', X'...' : ends at the first quote
const QUOTED_IDENT = 5; // "..." and U&"..."
const DOLLAR_QUOTE = 6;
const BLOCK_COMMENT = 7;

type Mode = 'sql' | 'copy';
type Action = 'keep' | 'drop' | 'wrap-create-role';
interface Token {
  kind: 'word' | 'ident' | 'string' | 'other';
  text: string;
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isAsciiLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isIdentChar = (c: number) => isAsciiLetter(c) || isDigit(c) || c === DOLLAR || c >= 128;

class RestoreFilter extends Transform {
  private readonly options: RestoreFilterOptions;
  private mode: Mode = 'sql';
  private lineNo = 0;
  private statements = 0;
  private out: Buffer[] = [];

  /** Pieces of a line split across chunks (SQL mode). */
  private lineCarry: Buffer[] = [];
  /** Up to 3 bytes of COPY data held back: a possible `\.` or a CR before LF. */
  private copyCarry: Buffer | null = null;
  /** COPY mode: the next byte is not at the start of a line. */
  private midLine = false;

  // Lexer (mirrors psqlscan.l).
  private state = NORMAL;
  private dollarTag: Buffer = Buffer.alloc(0);
  private commentDepth = 0;
  private parenDepth = 0;
  private beginDepth = 0;
  private identCount = 0;
  private readonly trackedIdents = [0, 0, 0, 0];
  private stringIsNational = false;
  private stringNeedsRewrite = false;
  private stringNeedsSpace = false;
  private stringPart = 0;
  private identPart = -1;

  // Current statement: its text (from the first token) and what we know about it.
  private line: Buffer = Buffer.alloc(0);
  private seg = 0; // start of the current line's text not yet moved to `parts` or emitted
  private inBody = false;
  private parts: Buffer[] = [];
  private tokens: Token[] = [];
  private isCopy = false;
  private afterFrom = false;
  private copyFromStdin = false;
  private copyPending = false;

  // Cluster dumps.
  private cluster = false;
  private sawContent = false;
  private section: string | null = null;
  private chosen: string | undefined;
  private chosenConnected = false;
  private readonly listedDatabases = new Set<string>();
  private readonly sections: string[] = [];

  constructor(options: RestoreFilterOptions) {
    super();
    this.options = options;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.out = [];
      this.checkNoNul(chunk);
      this.process(chunk);
      this.flushOut();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.out = [];
      if (this.lineCarry.length > 0) {
        let line = Buffer.concat(this.lineCarry);
        this.lineCarry = [];
        if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
        this.sqlLine(line, false);
      }
      if (this.copyCarry) {
        if (this.keep) this.out.push(this.copyCarry);
        this.copyCarry = null;
      }
      // psql sends an unterminated last statement at end of input: judge it the same way.
      if (this.state === PLAIN_STRING && this.stringNeedsRewrite) {
        this.refuse('an unterminated string literal with a backslash before a quote');
      }
      if (this.inBody) this.finishStatement(false);
      if (this.cluster && !this.chosenConnected) {
        const found = this.sections.filter((name) => !SYSTEM_DATABASES.has(name));
        throw new Error(
          `The cluster dump has no section for the database "${this.chosen ?? this.options.databaseName}"` +
            (found.length ? ` (it contains ${found.map((n) => `"${n}"`).join(', ')}).` : ' (it contains no databases).'),
        );
      }
      this.flushOut();
      this.options.onStats?.({ lines: this.lineNo, statements: this.statements });
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  private flushOut(): void {
    if (this.out.length === 1) this.push(this.out[0]);
    else if (this.out.length > 1) this.push(Buffer.concat(this.out));
    this.out = [];
  }

  /** psql reads lines with fgets and strlen: a NUL would hide the rest of a line from psql, not from us. */
  private checkNoNul(chunk: Buffer): void {
    const at = chunk.indexOf(0);
    if (at === -1) return;
    let line = this.lineNo + 1;
    for (let i = chunk.indexOf(LF); i !== -1 && i < at; i = chunk.indexOf(LF, i + 1)) line++;
    throw new UnsafeDumpError(`Refused: the dump contains a NUL byte at line ${line}; it is not a text SQL dump.`, line);
  }

  private process(chunk: Buffer): void {
    let buf = chunk;
    let pos = 0;
    if (this.copyCarry) {
      buf = Buffer.concat([this.copyCarry, chunk]);
      this.copyCarry = null;
    } else if (this.lineCarry.length > 0) {
      const nl = chunk.indexOf(LF);
      if (nl === -1) {
        this.lineCarry.push(chunk);
        return;
      }
      this.lineCarry.push(chunk.subarray(0, nl));
      const line = Buffer.concat(this.lineCarry);
      this.lineCarry = [];
      this.sqlLine(stripCr(line), true);
      pos = nl + 1;
    }
    while (pos < buf.length) {
      if (this.mode === 'copy') {
        pos = this.copyData(buf, pos);
        continue;
      }
      const nl = buf.indexOf(LF, pos);
      if (nl === -1) {
        this.lineCarry.push(buf.subarray(pos));
        return;
      }
      this.sqlLine(stripCr(buf.subarray(pos, nl)), true);
      pos = nl + 1;
    }
  }

  // ---------------------------------------------------------------- COPY data

  /**
   * Passes COPY data through until a line that is exactly `\.` (what psql's
   * handleCopyIn looks for), stripping CRs before LFs. Returns where SQL resumes.
   */
  private copyData(buf: Buffer, start: number): number {
    const end = buf.length;
    const keep = this.keep;
    let pos = start;
    let from = start; // first byte not yet emitted
    let lines = 0;
    for (;;) {
      if (!this.midLine && buf[pos] === BACKSLASH) {
        const avail = end - pos;
        let markerLength = 0;
        let needMore = avail < 2;
        if (!needMore && buf[pos + 1] === DOT) {
          if (avail < 3) needMore = true;
          else if (buf[pos + 2] === LF) markerLength = 3;
          else if (buf[pos + 2] === CR) {
            if (avail < 4) needMore = true;
            else if (buf[pos + 3] === LF) markerLength = 4;
          }
        }
        if (needMore) {
          if (keep) this.pushRange(buf, from, pos);
          this.copyCarry = Buffer.from(buf.subarray(pos));
          break;
        }
        if (markerLength > 0) {
          if (keep) this.pushRange(buf, from, pos);
          if (keep) this.out.push(END_OF_COPY);
          else this.emitNewlines(lines + 1);
          this.lineNo += lines + 1;
          this.mode = 'sql';
          return pos + markerLength;
        }
      }
      const nl = buf.indexOf(LF, pos);
      if (nl === -1) {
        if (pos < end) {
          this.midLine = true;
          if (buf[end - 1] === CR) {
            if (keep) this.pushRange(buf, from, end - 1);
            this.copyCarry = Buffer.from([CR]);
            break;
          }
        }
        if (keep) this.pushRange(buf, from, end);
        break;
      }
      lines++;
      if (nl > pos && buf[nl - 1] === CR) {
        if (keep) this.pushRange(buf, from, nl - 1);
        from = nl;
      }
      pos = nl + 1;
      this.midLine = false;
    }
    this.lineNo += lines;
    if (!keep) this.emitNewlines(lines);
    return end;
  }

  // ---------------------------------------------------------------- SQL lines

  private sqlLine(line: Buffer, hasNewline: boolean): void {
    this.lineNo++;
    this.line = line;
    this.seg = 0;
    const n = line.length;
    if (this.state === NORMAL && !this.inBody && n > 0) {
      if (line[0] === BACKSLASH) return this.metaCommandLine(line, hasNewline);
      if (line[0] === DASH && line[1] === DASH) this.commentLine(line);
    }
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case NORMAL:
          i = this.lexNormal(line, i);
          break;
        case PLAIN_STRING:
        case UNICODE_STRING:
        case BIT_STRING:
          i = this.lexQuote(line, i);
          break;
        case ESCAPE_STRING:
          i = this.lexEscapeString(line, i);
          break;
        case QUOTED_IDENT:
          i = this.lexQuotedIdent(line, i);
          break;
        case DOLLAR_QUOTE: {
          const close = line.indexOf(this.dollarTag, i);
          if (close === -1) i = n;
          else {
            this.state = NORMAL;
            i = close + this.dollarTag.length;
          }
          break;
        }
        case BLOCK_COMMENT:
          i = this.lexBlockComment(line, i);
          break;
      }
    }
    const rest = line.subarray(this.seg, n);
    if (this.inBody) {
      if (rest.length > 0) this.parts.push(rest);
      if (hasNewline) this.parts.push(NEWLINE);
    } else {
      this.emitText(rest);
      if (hasNewline) this.emitText(NEWLINE);
    }
    if (this.copyPending) {
      // psql reads COPY data from the line after the one holding the COPY's semicolon.
      if (this.state !== NORMAL) this.refuse('an unterminated comment or quote after COPY ... FROM stdin');
      this.copyPending = false;
      this.mode = 'copy';
      this.midLine = false;
    }
  }

  /** Normal lexer state: whitespace, comments, tokens. Returns where lexing continues. */
  private lexNormal(line: Buffer, start: number): number {
    const n = line.length;
    let i = start;
    while (i < n) {
      const c = line[i];
      if (c === SPACE || c === TAB || c === CR || c === FF) {
        i++;
        continue;
      }
      if (c === DASH && line[i + 1] === DASH) {
        // psql ends a -- comment at CR as well as LF: `-- x\r\! cmd` runs the command.
        const cr = line.indexOf(CR, i + 2);
        if (cr === -1) return n;
        i = cr + 1;
        continue;
      }
      if (c === SLASH && line[i + 1] === STAR) {
        this.state = BLOCK_COMMENT;
        this.commentDepth = 0;
        return i + 2;
      }
      this.tokenStart(i);
      if (c === QUOTE) return this.openString(PLAIN_STRING, i);
      if (c === DQ) return this.openQuotedIdent(i);
      if (c === DOLLAR) {
        const next = this.lexDollar(line, i);
        if (next < 0) return -next; // a dollar quote was opened
        i = next;
        continue;
      }
      if (c === BACKSLASH) this.refuseMetaCommand(line, i);
      if (c === COLON) {
        i = this.lexColon(line, i);
        continue;
      }
      if (c === LPAREN) {
        this.addToken('other', '(');
        this.parenDepth++;
        i++;
        continue;
      }
      if (c === RPAREN) {
        if (this.parenDepth > 0) this.parenDepth--;
        this.addToken('other', ')');
        i++;
        continue;
      }
      if (c === SEMI) {
        i++;
        if (this.parenDepth === 0 && this.beginDepth === 0) {
          this.parts.push(line.subarray(this.seg, i));
          this.seg = i;
          this.finishStatement(true);
        } else this.addToken('other', ';');
        continue;
      }
      if (isDigit(c) || (c === DOT && isDigit(line[i + 1]))) {
        i = this.lexNumber(line, i);
        continue;
      }
      if (isAsciiLetter(c)) {
        const next = this.lexWord(line, i);
        if (next < 0) return -next; // a prefixed string or identifier was opened
        i = next;
        continue;
      }
      if (c >= 128) this.refuse('a non-ASCII byte outside quotes');
      this.addToken('other', String.fromCharCode(c));
      i++;
    }
    return n;
  }

  /** A word: identifier or keyword, or the prefix of E'', B'', X'', N'', U&'' and U&"". */
  private lexWord(line: Buffer, start: number): number {
    let j = start + 1;
    while (j < line.length && isIdentChar(line[j])) {
      if (line[j] >= 128) this.refuse('a non-ASCII byte outside quotes');
      j++;
    }
    if (j === start + 1) {
      const letter = line[start] | 0x20;
      if (line[j] === QUOTE) {
        if (letter === 0x65 /* e */) return -this.openString(ESCAPE_STRING, j);
        if (letter === 0x62 /* b */ || letter === 0x78 /* x */) return -this.openString(BIT_STRING, j);
        if (letter === 0x6e /* n */) {
          this.stringIsNational = true;
          return -this.openString(PLAIN_STRING, j);
        }
      }
      if (letter === 0x75 /* u */ && line[j] === AMP) {
        if (line[j + 1] === QUOTE) return -this.openString(UNICODE_STRING, j + 1);
        if (line[j + 1] === DQ) return -this.openQuotedIdent(j + 1);
        // psql's {xufailed}: a lone "U" before "&" is not an identifier token.
        this.addToken('other', 'u');
        return j;
      }
    }
    this.onIdentifier(line.toString('latin1', start, j).toLowerCase());
    return j;
  }

  /**
   * psql's rules for BEGIN ... END in `CREATE [OR REPLACE] FUNCTION|PROCEDURE`
   * bodies (psqlscan.l), so statements end exactly where psql ends them.
   */
  private onIdentifier(word: string): void {
    const ids = this.trackedIdents;
    if (this.identCount === 0) ids.fill(0);
    if (this.identCount < 4 && PSQL_TRACKED_WORDS.has(word)) ids[this.identCount] = word.charCodeAt(0);
    this.identCount++;
    if (
      ids[0] === C_ &&
      (ids[1] === F_ || ids[1] === P_ || (ids[1] === O_ && ids[2] === R_ && (ids[3] === F_ || ids[3] === P_))) &&
      this.parenDepth === 0
    ) {
      if (word === 'begin') this.beginDepth++;
      else if (word === 'case') {
        if (this.beginDepth >= 1) this.beginDepth++;
      } else if (word === 'end' && this.beginDepth > 0) this.beginDepth--;
    }
    if (this.isCopy && word === 'program') this.refuse('COPY ... PROGRAM, which runs a shell command on the database server');
    const fromStdin = this.isCopy && this.parenDepth === 0 && this.afterFrom && word === 'stdin';
    this.addToken('word', word);
    if (fromStdin) this.copyFromStdin = true;
    if (this.tokens.length === 1 && word === 'copy') this.isCopy = true;
    this.afterFrom = this.parenDepth === 0 && word === 'from';
  }

  /**
   * Numbers. Digits run straight into letters ("1abc", "0x1F", "1_000") are
   * lexed differently by psql 14, 15 and 16, so such input is refused.
   */
  private lexNumber(line: Buffer, start: number): number {
    let j = start;
    while (isDigit(line[j])) j++;
    if (line[j] === DOT && line[j + 1] !== DOT) {
      j++;
      while (isDigit(line[j])) j++;
    }
    if (line[j] === 0x65 || line[j] === 0x45) {
      let k = j + 1;
      if (line[k] === PLUS || line[k] === DASH) k++;
      if (isDigit(line[k])) {
        j = k;
        while (isDigit(line[j])) j++;
      }
    }
    if (j < line.length && (isAsciiLetter(line[j]) || line[j] >= 128)) {
      this.refuse(`the malformed number "${line.toString('latin1', start, Math.min(j + 8, line.length))}"`);
    }
    this.addToken('other', line.toString('latin1', start, j));
    return j;
  }

  /** `$1`, `$tag$` (opens a dollar quote: returns minus the next position) or a lone `$`. */
  private lexDollar(line: Buffer, start: number): number {
    const d = line[start + 1];
    if (isDigit(d)) {
      let j = start + 1;
      while (isDigit(line[j])) j++;
      if (j < line.length && (isAsciiLetter(line[j]) || line[j] >= 128)) this.refuse('a malformed parameter');
      this.addToken('other', '$');
      return j;
    }
    let j = start + 1;
    if (isAsciiLetter(d)) {
      j++;
      while (isAsciiLetter(line[j]) || isDigit(line[j])) j++;
    }
    // psql compares tags after masking multi-byte characters; ASCII tags compare the same either way.
    if (line[j] >= 128) this.refuse('a non-ASCII dollar-quote tag');
    if (line[j] !== DOLLAR) {
      this.addToken('other', '$'); // psql's {dolqfailed}: only the "$" is consumed
      return start + 1;
    }
    this.dollarTag = Buffer.from(line.subarray(start, j + 1));
    this.state = DOLLAR_QUOTE;
    this.addToken('string', '');
    return -(j + 1);
  }

  /**
   * psql substitutes `:name`, `:'name'`, `:"name"` and `:{?name}` when the
   * variable exists, and re-lexes the value. Only psql's own (upper-case)
   * variables exist here, so those are refused; others pass through as psql
   * echoes them. `::` and `:=` are operators.
   */
  private lexColon(line: Buffer, start: number): number {
    const next = line[start + 1];
    if (next === COLON || next === EQUALS) {
      this.addToken('other', ':');
      return start + 2;
    }
    if (next === LBRACE && line[start + 2] === 0x3f /* ? */) this.refuse('a psql variable test ":{?"');
    let j = start + 1;
    const quote = next === QUOTE || next === DQ ? next : 0;
    if (quote) j++;
    const nameStart = j;
    while (j < line.length && (isAsciiLetter(line[j]) || isDigit(line[j]) || line[j] >= 128)) j++;
    if (j === nameStart || (quote && line[j] !== quote)) {
      this.addToken('other', ':'); // just a colon; a quote after it is lexed next
      return start + 1;
    }
    const name = line.toString('utf8', nameStart, j);
    if (/[A-Z]/.test(name) || line[nameStart] >= 128) this.refuse(`the psql variable reference ":${name}"`);
    this.addToken('other', ':');
    return quote ? j + 1 : j;
  }

  private openString(kind: number, quoteAt: number): number {
    this.state = kind;
    this.stringNeedsRewrite = false;
    if (kind === PLAIN_STRING) {
      // Remember where the literal starts in case it has to be rewritten (see lexQuote).
      this.stringNeedsSpace = quoteAt > 0 && isIdentChar(this.line[quoteAt - 1]);
      this.parts.push(this.line.subarray(this.seg, quoteAt));
      this.seg = quoteAt;
      this.stringPart = this.parts.length;
    }
    this.addToken('string', '');
    return quoteAt + 1;
  }

  /**
   * '...' (and U&'...', B'...', X'...').
   *
   * psql reads a plain literal with backslash escapes when the server reports
   * standard_conforming_strings = off, and any SQL (even a function call) can
   * switch that mid-restore. The two readings differ only when a backslash
   * stands right before a quote; such a literal is rewritten to U&'...' with
   * doubled backslashes: the same value, and psql never treats a backslash in
   * U&'' as an escape.
   */
  private lexQuote(line: Buffer, start: number): number {
    let i = start;
    for (;;) {
      const q = line.indexOf(QUOTE, i);
      if (q === -1) return line.length;
      if (this.state === PLAIN_STRING && q > 0 && line[q - 1] === BACKSLASH) this.stringNeedsRewrite = true;
      if (this.state !== BIT_STRING && line[q + 1] === QUOTE) {
        i = q + 2;
        continue;
      }
      if (this.state === PLAIN_STRING && this.stringNeedsRewrite) this.rewriteString(line, q);
      this.state = NORMAL;
      this.stringIsNational = false;
      return q + 1;
    }
  }

  private rewriteString(line: Buffer, closeAt: number): void {
    if (this.stringIsNational) this.refuse("a backslash before a quote in an N'...' literal");
    const literal = Buffer.concat([...this.parts.slice(this.stringPart), line.subarray(this.seg, closeAt + 1)]);
    const body = literal.subarray(1, literal.length - 1);
    let backslashes = 0;
    for (const byte of body) if (byte === BACKSLASH) backslashes++;
    const prefix = this.stringNeedsSpace ? " U&'" : "U&'";
    const out = Buffer.allocUnsafe(prefix.length + body.length + backslashes + 1);
    let o = out.write(prefix, 'latin1');
    for (const byte of body) {
      out[o++] = byte;
      if (byte === BACKSLASH) out[o++] = BACKSLASH;
    }
    out[o] = QUOTE;
    this.parts.length = this.stringPart;
    this.parts.push(out);
    this.seg = closeAt + 1;
  }

  /** E'...': backslash escapes the next byte. */
  private lexEscapeString(line: Buffer, start: number): number {
    for (let i = start; i < line.length; i++) {
      const c = line[i];
      if (c === BACKSLASH) {
        // In SJIS/BIG5/GBK a byte >= 0x80 followed by "\" is one character for psql.
        if (i > 0 && line[i - 1] >= 128) this.refuse('a backslash after a non-ASCII byte in an E\'...\' literal');
        i++; // the escaped byte (a backslash at the end of the line escapes the newline)
      } else if (c === QUOTE) {
        if (line[i + 1] === QUOTE) i++;
        else {
          this.state = NORMAL;
          return i + 1;
        }
      }
    }
    return line.length;
  }

  private openQuotedIdent(quoteAt: number): number {
    this.state = QUOTED_IDENT;
    this.identPart = -1;
    if (this.parenDepth === 0 && this.tokens.length < MAX_TOKENS) {
      // Keep the name: role and database statements are judged by it.
      this.parts.push(this.line.subarray(this.seg, quoteAt));
      this.seg = quoteAt;
      this.identPart = this.parts.length;
    }
    return quoteAt + 1;
  }

  private lexQuotedIdent(line: Buffer, start: number): number {
    let i = start;
    for (;;) {
      const q = line.indexOf(DQ, i);
      if (q === -1) return line.length;
      if (line[q + 1] === DQ) {
        i = q + 2;
        continue;
      }
      this.state = NORMAL;
      if (this.identPart >= 0) {
        const raw = Buffer.concat([...this.parts.slice(this.identPart), line.subarray(this.seg, q)]);
        this.addToken('ident', raw.toString('utf8', 1).replaceAll('""', '"'));
      } else this.addToken('ident', '');
      return q + 1;
    }
  }

  private lexBlockComment(line: Buffer, start: number): number {
    for (let i = start; i < line.length; i++) {
      const c = line[i];
      if (c === SLASH && line[i + 1] === STAR) {
        this.commentDepth++;
        i++;
      } else if (c === STAR && line[i + 1] === SLASH) {
        if (this.commentDepth === 0) {
          this.state = NORMAL;
          return i + 2;
        }
        this.commentDepth--;
        i++;
      }
    }
    return line.length;
  }

  private tokenStart(at: number): void {
    if (this.copyPending) this.refuse('a statement after COPY ... FROM stdin on the same line');
    this.sawContent = true;
    if (this.inBody) return;
    this.emitText(this.line.subarray(this.seg, at));
    this.seg = at;
    this.inBody = true;
  }

  private addToken(kind: Token['kind'], text: string): void {
    if (this.parenDepth === 0) this.afterFrom = false;
    if (this.tokens.length < MAX_TOKENS && (this.parenDepth === 0 || this.tokens.length === 0)) {
      this.tokens.push({ kind, text });
    }
  }

  // ---------------------------------------------------------------- statements

  private finishStatement(complete: boolean): void {
    const body = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    const tokens = this.tokens;
    const copyFromStdin = complete && this.isCopy && this.copyFromStdin;
    this.parts = [];
    this.tokens = [];
    this.inBody = false;
    this.isCopy = false;
    this.copyFromStdin = false;
    this.afterFrom = false;
    this.identCount = 0;
    this.statements++;

    const action = this.classify(tokens);
    if (!this.keep || action === 'drop') this.emitNewlines(countNewlines(body));
    else if (action === 'wrap-create-role' && complete) this.out.push(...wrapCreateRole(body));
    else if (body.equals(SEARCH_PATH_ORIGINAL)) this.out.push(SEARCH_PATH_REWRITTEN);
    else this.out.push(body);
    if (copyFromStdin) this.copyPending = true;
  }

  private classify(tokens: Token[]): Action {
    const verb = wordAt(tokens, 0);
    const object = wordAt(tokens, 1);
    if (verb === 'create' || verb === 'alter' || verb === 'drop') {
      if (object === 'database') {
        if (this.section === null && verb !== 'alter') {
          const ifExists = wordAt(tokens, 2) === 'if' && wordAt(tokens, 3) === 'exists';
          const db = nameAt(tokens, ifExists ? 4 : 2);
          if (db !== undefined) this.listedDatabases.add(db);
        }
        return 'drop';
      }
      const userMapping = object === 'user' && wordAt(tokens, 2) === 'mapping';
      if (object !== undefined && ROLE_WORDS.has(object) && !userMapping) {
        if (verb === 'drop') return 'drop';
        const role = tokens[2];
        if (!role) return 'keep';
        if (role.kind === 'word' && verb === 'alter' && SELF_ROLE_WORDS.has(role.text)) return 'drop';
        if (nameAt(tokens, 2) === this.options.connectingRole) return 'drop';
        if (verb === 'alter' && wordAt(tokens, 3) === 'in' && wordAt(tokens, 4) === 'database') {
          return nameAt(tokens, 5) === this.options.databaseName ? 'keep' : 'drop';
        }
        return verb === 'create' ? 'wrap-create-role' : 'keep';
      }
      return 'keep';
    }
    if (verb === 'comment' && object === 'on' && wordAt(tokens, 2) === 'database') return 'drop';
    if (verb === 'grant' || verb === 'revoke' || verb === 'security') {
      for (let i = 1; i + 1 < tokens.length; i++) {
        if (wordAt(tokens, i) === 'on' && wordAt(tokens, i + 1) === 'database') return 'drop';
      }
      return 'keep';
    }
    if (verb === 'update') {
      const table = wordAt(tokens, 1) === 'pg_catalog' && tokens[2]?.text === '.' ? wordAt(tokens, 3) : wordAt(tokens, 1);
      if (table === 'pg_database') return 'drop';
    }
    return 'keep';
  }

  // ---------------------------------------------------------------- meta-commands, sections

  private metaCommandLine(line: Buffer, hasNewline: boolean): void {
    this.sawContent = true;
    const text = line.toString('utf8');
    const match = /^\\([A-Za-z]+)(?:[ \t]+(.*))?$/.exec(text);
    const command = match?.[1];
    if (command === 'connect' || command === 'c') {
      if (this.cluster) {
        const target = connectTarget(match?.[2] ?? '');
        if (target !== undefined) this.enterSection(target, true);
      }
      this.emitNewlines(hasNewline ? 1 : 0);
      return;
    }
    if (command === 'restrict' || command === 'unrestrict') {
      if (!/^\\(un)?restrict[ \t]+[A-Za-z0-9]+[ \t]*$/.test(text)) {
        this.refuse(`a malformed \\${command} line`);
      }
      if (this.keep) {
        this.out.push(line);
        if (hasNewline) this.out.push(NEWLINE);
      } else this.emitNewlines(hasNewline ? 1 : 0);
      return;
    }
    this.refuseMetaCommand(line, 0);
  }

  private commentLine(line: Buffer): void {
    const text = line.toString('utf8');
    if (!this.sawContent && /^-- PostgreSQL database cluster dump\s*$/.test(text)) this.cluster = true;
    if (!this.cluster) return;
    const section = /^-- Database "(.*)" dump\s*$/.exec(text);
    if (section) this.enterSection(section[1], false);
  }

  private enterSection(database: string, connected: boolean): void {
    if (this.chosen === undefined) this.chosen = this.chooseDatabase();
    this.section = database;
    if (!this.sections.includes(database)) this.sections.push(database);
    if (connected && database === this.chosen) this.chosenConnected = true;
  }

  private chooseDatabase(): string {
    const wanted = this.options.databaseName;
    const others = [...this.listedDatabases].filter((name) => !SYSTEM_DATABASES.has(name));
    if (this.listedDatabases.has(wanted) || SYSTEM_DATABASES.has(wanted) || others.length === 0) return wanted;
    if (others.length === 1) {
      this.options.onNotice?.(
        `The cluster dump has no database "${wanted}"; restoring its only database "${others[0]}" into "${wanted}".`,
      );
      return others[0];
    }
    throw new Error(
      `The cluster dump has no database "${wanted}" and several others (${others.map((n) => `"${n}"`).join(', ')}); ` +
        'cannot tell which one to restore.',
    );
  }

  /** In a cluster dump, only the globals and the chosen database's section reach psql. */
  private get keep(): boolean {
    return !this.cluster || this.section === null || this.section === this.chosen;
  }

  // ---------------------------------------------------------------- output, errors

  private pushRange(buf: Buffer, from: number, to: number): void {
    if (to > from) this.out.push(buf.subarray(from, to));
  }

  private emitText(text: Buffer): void {
    if (text.length === 0) return;
    if (this.keep) this.out.push(text);
    else this.emitNewlines(countNewlines(text));
  }

  private emitNewlines(count: number): void {
    if (count === 1) this.out.push(NEWLINE);
    else if (count > 1) this.out.push(Buffer.alloc(count, LF));
  }

  private refuse(what: string): never {
    throw new UnsafeDumpError(`Refused: the dump contains ${what} at line ${this.lineNo}.`, this.lineNo);
  }

  private refuseMetaCommand(line: Buffer, at: number): never {
    const rest = line.toString('latin1', at + 1, Math.min(line.length, at + 40));
    const name = /^[A-Za-z]+/.exec(rest)?.[0] ?? rest.charAt(0);
    throw new UnsafeDumpError(
      `Refused: the dump contains the psql meta-command "\\${name}" at line ${this.lineNo}. ` +
        'Only \\connect, \\restrict and \\unrestrict are allowed.',
      this.lineNo,
    );
  }
}

function wordAt(tokens: Token[], i: number): string | undefined {
  return tokens[i]?.kind === 'word' ? tokens[i].text : undefined;
}

/** A name as the server sees it: unquoted words are folded to lower case. */
function nameAt(tokens: Token[], i: number): string | undefined {
  const t = tokens[i];
  return t && (t.kind === 'word' || t.kind === 'ident') ? t.text : undefined;
}

function stripCr(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
}

function countNewlines(buf: Buffer): number {
  let count = 0;
  for (let i = buf.indexOf(LF); i !== -1; i = buf.indexOf(LF, i + 1)) count++;
  return count;
}

/** `CREATE ROLE x;` → the same inside a block that ignores "already exists". */
function wrapCreateRole(statement: Buffer): Buffer[] {
  let tag = '$lifeboat$';
  for (let n = 1; statement.includes(tag); n++) tag = `$lifeboat${n}$`;
  return [
    Buffer.from(`DO ${tag} BEGIN `),
    statement,
    Buffer.from(` EXCEPTION WHEN duplicate_object THEN NULL; END ${tag};`),
  ];
}

/**
 * The database a `\connect` line names: `\connect immich`,
 * `\connect -reuse-previous=on "dbname='immich'"`, or a URI.
 */
export function connectTarget(args: string): string | undefined {
  const words = psqlArguments(args);
  const spec = words.find((w) => !w.startsWith('-'));
  if (spec === undefined) return undefined;
  if (/^postgres(ql)?:\/\//.test(spec)) {
    try {
      const path = new URL(spec).pathname.slice(1);
      return path ? decodeURIComponent(path) : undefined;
    } catch {
      return undefined;
    }
  }
  if (!spec.includes('=')) return spec;
  const pair = /(?:^|\s)dbname\s*=\s*('((?:[^'\\]|\\.)*)'|\S*)/.exec(spec);
  if (!pair) return undefined;
  return pair[2] !== undefined ? pair[2].replace(/\\(.)/g, '$1') : pair[1];
}

/** psql's splitting of meta-command arguments: whitespace, "double" and 'single' quotes. */
function psqlArguments(text: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i])) i++;
    if (i >= text.length) break;
    let word = '';
    while (i < text.length && !/\s/.test(text[i])) {
      const quote = text[i];
      if (quote !== '"' && quote !== "'") {
        word += text[i++];
        continue;
      }
      i++;
      while (i < text.length) {
        if (text[i] === quote) {
          if (text[i + 1] === quote) {
            word += quote;
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (quote === "'" && text[i] === '\\' && i + 1 < text.length) {
          word += text[i + 1];
          i += 2;
          continue;
        }
        word += text[i++];
      }
    }
    words.push(word);
  }
  return words;
}
