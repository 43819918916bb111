/**
 * A streaming lexer that finds where psql's top-level statements, meta-command lines, comment lines
 * and COPY data begin and end, so that the restore filter can leave out or rewrite whole statements
 * and pass every other byte through unchanged. It follows psql's rules (psqlscan.l) for honest
 * pg_dump output: quotes of every kind, standard_conforming_strings, nested comments, dollar quotes,
 * and the multibyte client encodings whose trailing bytes can look like ASCII.
 *
 * It is not a security boundary: psql's restricted mode and an unprivileged role are. A hostile file
 * that makes it misjudge a boundary only changes which statements are kept, and psql and PostgreSQL
 * still refuse what the role may not do. Memory stays bounded on any input: a statement is held
 * only while it may still be rewritten, up to `captureLimit` bytes, and lines are never buffered.
 */

export interface StatementInfo {
  /** Lower-cased first word (empty when the statement does not start with a word). */
  firstWord: string;
  /** Lower-cased last two words before the semicolon (for COPY ... FROM stdin). */
  lastWords: [string, string];
  /**
   * The statement names set_config (as a word or a quoted identifier) or has a U&"..." identifier:
   * it may change a setting psql reads by, so the sink must see it whole (see LexerSink.uncaptured).
   */
  suspect: boolean;
  /** It outgrew captureLimit: from then on it streamed through (see LexerSink.overflow). */
  overflowed: boolean;
  /**
   * Offsets (from its first byte) of the `;` psql did not end it at, being inside what it counts as a
   * BEGIN ... END body (psqlscan.l): psql sends the whole as one query, and the server runs each
   * statement its own grammar finds in it.
   */
  joins: number[];
}

export interface LexerSink {
  /** Bytes passed through unchanged. */
  text(bytes: Buffer): void;
  /** Is this statement (by its first word) one the filter may rewrite? Then it is captured. */
  wants(firstWord: string): boolean;
  /** A whole captured statement, from its first byte to its `;` (or end of input). */
  statement(text: Buffer, info: StatementInfo): void;
  /** A line starting with a backslash at a statement boundary, without its line end (`eol` is "\n", "\r\n" or "" at end of input). */
  metaLine(line: Buffer, eol: string): void;
  /** A `--` comment line at a statement boundary (its first bytes, for pg_dumpall's section headers). Passed through by text() as well. */
  commentLine?(head: string): void;
  /** COPY data starts (after a COPY ... FROM stdin statement's line) or ends. */
  copy?(started: boolean): void;
  /**
   * A captured statement outgrew captureLimit: its first `head` bytes, before they are handed on
   * (by text()) with the rest of it. May throw to refuse it.
   */
  overflow?(head: Buffer, info: StatementInfo): void;
  /**
   * The end of a statement that was not captured whole (never wanted, or overflowed) and is
   * suspect or overflowed, before its `;` is handed on: psql cannot run it until then. May throw.
   */
  uncaptured?(info: StatementInfo): void;
}

const enum S {
  Normal,
  Quote, // '...' (backslash escapes when escapeQuote is set)
  Ident, // "..."
  Dollar,
  Block,
  LineComment,
  Meta,
  Copy,
}

const LF = 10;
const CR = 13;
const BACKSLASH = 92;
const LINE_THEN_BACKSLASH = Buffer.from('\n\\');
/**
 * Encodings whose second byte of a character may be an ASCII quote or backslash (psql uses PQmblen),
 * under every name PostgreSQL accepts for them (encnames.c, compared as clean_encoding_name does),
 * with how long a character starting with a byte ≥ 0x80 is.
 */
const SJIS = new Set(['sjis', 'mskanji', 'shiftjis', 'win932', 'windows932', 'cp932', 'shiftjis2004']);
const UNSAFE_ENCODINGS = new Set([...SJIS, 'big5', 'win950', 'windows950', 'cp950', 'gbk', 'win936', 'windows936', 'cp936', 'uhc', 'win949', 'windows949', 'cp949', 'gb18030', 'johab']);
const WORD_LIMIT = 24;
const META_LIMIT = 4096;
const COMMENT_HEAD = 256;
/** A lookahead never needs more than this many bytes (the longest dollar-quote tag kept). */
const LOOKAHEAD = 80;

const isSpace = (c: number) => c === 32 || c === 9 || c === LF || c === CR || c === 12 || c === 11;
const isIdentStart = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c >= 128;
const isIdentChar = (c: number) => isIdentStart(c) || (c >= 48 && c <= 57) || c === 36;

export class PsqlLexer {
  private state = S.Normal;
  private pending: Buffer | null = null;
  /** Inside a statement (a token was seen since the last `;`). */
  private inStatement = false;
  private atLineStart = true;
  private escapeQuote = false;
  private dollarTag: Buffer = Buffer.alloc(0);
  private depth = 0;
  private parens = 0;
  private multibyte = false;
  private encoding = '';
  private standardStrings = true;
  /** Bytes still to skip of a multibyte character (cross-chunk). */
  private skip = 0;

  // The statement in progress.
  private firstWord = '';
  private word = '';
  private lastWords: [string, string] = ['', ''];
  private capturing = false;
  private captured: Buffer[] = [];
  private capturedBytes = 0;
  private meta: Buffer[] = [];
  private metaBytes = 0;
  private metaOverflow = false;
  private comment = '';
  private copyPending = false;
  private suspect = false;
  private joins: number[] = [];
  /** The statement has the word stdin outside parentheses (see checkEnd). */
  private stdin = false;
  /** The buffer ended inside a word: the next one's first bytes continue it. */
  private midWord = false;
  private overflowed = false;
  /** The first bytes of the quoted identifier being read (to spot "set_config"). */
  private identHead = '';
  /** The last word read and where it ended in the current buffer (-1: not in it): a string's prefix. */
  private prefixWord = '';
  private prefixEnd = -1;
  // psql's rule for CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC ... END: no end at the inner semicolons.
  private words: string[] = [];
  private wordCount = 0;
  private beginDepth = 0;

  constructor(
    private readonly sink: LexerSink,
    private readonly captureLimit = 1024 * 1024,
  ) {}

  /** psql's reading of a plain '...' depends on the server's standard_conforming_strings (pg_dump sets it). */
  setStandardStrings(on: boolean): void {
    this.standardStrings = on;
  }

  /** What psql reads by now: saved where a cluster dump leaves the chosen database's section, put back where it resumes. */
  get settings(): { encoding: string; standardStrings: boolean } {
    return { encoding: this.encoding, standardStrings: this.standardStrings };
  }

  set settings(saved: { encoding: string; standardStrings: boolean }) {
    this.setClientEncoding(saved.encoding);
    this.standardStrings = saved.standardStrings;
  }

  setClientEncoding(name: string): void {
    this.encoding = name.toLowerCase().replace(/[^a-z0-9]/g, '');
    this.multibyte = UNSAFE_ENCODINGS.has(this.encoding);
  }

  write(chunk: Buffer): void {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    this.run(buf, false);
  }

  end(): void {
    const buf = this.pending ?? Buffer.alloc(0);
    this.pending = null;
    this.run(buf, true);
    if (this.state === S.Meta) this.finishMeta('');
    if (this.capturing || this.inStatement) {
      // psql runs a last statement without its `;` at the end of its input.
      if (this.inStatement) this.checkEnd();
      this.finishStatement();
    }
  }

  private run(buf: Buffer, final: boolean): void {
    let i = 0;
    let from = 0; // first byte not yet handed on
    const n = buf.length;
    this.prefixEnd = -1;
    const flush = (to: number) => {
      if (to > from) this.out(buf.subarray(from, to));
      from = to;
    };
    while (i < n) {
      if (this.skip > 0) {
        const step = Math.min(this.skip, n - i);
        this.skip -= step;
        i += step;
        continue;
      }
      const c = buf[i];
      switch (this.state) {
        case S.Copy: {
          if (this.atLineStart && c === BACKSLASH) {
            if (n - i < 4 && !final) return this.hold(buf, i, from, flush);
            if (buf[i + 1] === 46 && (buf[i + 2] === LF || (buf[i + 2] === CR && buf[i + 3] === LF) || i + 2 >= n)) {
              const end = buf[i + 2] === LF ? i + 3 : buf[i + 2] === CR ? i + 4 : i + 2;
              flush(end);
              i = end;
              this.state = S.Normal;
              this.atLineStart = true;
              this.sink.copy?.(false);
              continue;
            }
          }
          // Only a line starting with a backslash can end the data: skip to the next one in one search
          // (rows are most of a dump; looking at each line's end costs a call per row).
          const next = buf.indexOf(LINE_THEN_BACKSLASH, i);
          if (next === -1) {
            this.atLineStart = buf[n - 1] === LF;
            i = n;
          } else {
            this.atLineStart = true;
            i = next + 1;
          }
          continue;
        }
        case S.Meta: {
          const nl = buf.indexOf(LF, i);
          const end = nl === -1 ? n : nl;
          this.keepMeta(buf.subarray(i, end));
          from = nl === -1 ? n : nl + 1;
          i = from;
          if (nl !== -1) this.finishMeta('\n');
          continue;
        }
        case S.LineComment: {
          // psql (and the server) end a -- comment at a carriage return too; the line end is then read as such.
          const nl = buf.indexOf(LF, i);
          const cr = buf.subarray(i, nl === -1 ? n : nl).indexOf(CR);
          const end = cr !== -1 ? i + cr : nl;
          if (this.comment.length < COMMENT_HEAD) this.comment += buf.toString('latin1', i, Math.min(end === -1 ? n : end, i + COMMENT_HEAD));
          if (end === -1) {
            i = n;
            continue;
          }
          i = end;
          this.state = S.Normal;
          if (!this.inStatement) this.sink.commentLine?.(this.comment);
          continue;
        }
        case S.Quote:
        case S.Ident: {
          const close = this.state === S.Quote ? 39 : 34;
          if (this.multibyte && c >= 128) {
            if (n - i < 4 && !final) return this.hold(buf, i, from, flush);
            this.skip = this.charLength(buf, i) - 1;
            i++;
          } else if (c === close) {
            if (i + 1 >= n && !final) return this.hold(buf, i, from, flush);
            if (buf[i + 1] === close) {
              if (this.state === S.Ident) this.identByte(c);
              i += 2;
            } else {
              if (this.state === S.Ident && this.identHead === 'set_config') this.suspect = true;
              this.state = S.Normal;
              this.atLineStart = false;
              i++;
            }
          } else if (c === BACKSLASH && this.state === S.Quote && this.escapeQuote) {
            if (i + 1 >= n && !final) return this.hold(buf, i, from, flush);
            i += 2;
          } else {
            if (this.state === S.Ident) this.identByte(c);
            i++;
          }
          continue;
        }
        case S.Dollar: {
          const close = buf.indexOf(this.dollarTag, i);
          if (close === -1) {
            // Keep the last tag-length bytes: the closing tag may straddle chunks.
            const keep = Math.max(i, n - this.dollarTag.length + 1);
            if (!final && keep < n) return this.hold(buf, keep, from, flush);
            i = n;
          } else {
            i = close + this.dollarTag.length;
            this.state = S.Normal;
            this.atLineStart = false;
          }
          continue;
        }
        case S.Block: {
          if ((c === 47 || c === 42) && i + 1 >= n && !final) return this.hold(buf, i, from, flush);
          if (c === 47 && buf[i + 1] === 42) {
            this.depth++;
            i += 2;
          } else if (c === 42 && buf[i + 1] === 47) {
            i += 2;
            if (this.depth-- === 0) {
              this.state = S.Normal;
              this.atLineStart = false;
            }
          } else i++;
          continue;
        }
      }

      // Normal state.
      if (this.midWord) {
        this.midWord = false;
        if (isIdentChar(c) || (this.multibyte && c >= 128)) {
          // The rest of a word the previous buffer ended in: one identifier to psql, never a keyword or a prefix.
          i = this.wordEnd(buf, i, final);
          this.noteWord('');
          if (this.midWord && i < n) return this.hold(buf, i, from, flush);
          continue;
        }
      }
      if (this.copyPending && !isSpace(c)) {
        // psql runs the rest of a COPY's line after its rows, where this lexer would read it before them.
        throw new LexerRefusal('SQL after a COPY ... FROM stdin on the same line');
      }
      if (isSpace(c)) {
        if (c === LF) {
          this.lineEnded();
          if (this.copyPending) {
            flush(i + 1);
            i++;
            this.startCopy();
            continue;
          }
        } else if (c !== CR) this.atLineStart = false;
        i++;
        continue;
      }
      const lineStart = this.atLineStart;
      this.atLineStart = false;
      if (i + LOOKAHEAD > n && !final && (c === 45 || c === 47 || c === 36 || c === 58 || c === BACKSLASH || isIdentStart(c))) {
        // A construct that needs lookahead (a comment, a dollar tag, a word): wait for more bytes, at most LOOKAHEAD.
        this.atLineStart = lineStart;
        return this.hold(buf, i, from, flush);
      }
      if (c === 45 && buf[i + 1] === 45) {
        this.state = S.LineComment;
        // Only a comment that starts a line between statements can be a pg_dumpall section header.
        this.comment = lineStart && !this.inStatement ? '--' : '\u0000';
        i += 2;
        continue;
      }
      if (c === 47 && buf[i + 1] === 42) {
        this.state = S.Block;
        this.depth = 0;
        i += 2;
        continue;
      }
      if (c === BACKSLASH && (buf[i + 1] === 59 || buf[i + 1] === 58)) {
        // psql puts the character of \; or \: into the query (psqlscan.l) and sends nothing: a \;
        // joins statements into one query, which could hold a COPY FROM stdin whose rows psql reads
        // next while this lexer reads them as SQL. pg_dump never writes it.
        if (buf[i + 1] === 59) throw new LexerRefusal('psql\'s \\; (statements joined into one query)');
        if (!this.inStatement) {
          flush(i);
          this.beginStatement(buf, i);
        }
        this.noteWord('');
        i += 2;
        continue;
      }
      if (c === BACKSLASH && lineStart && !this.inStatement) {
        flush(i);
        this.state = S.Meta;
        this.meta = [];
        this.metaBytes = 0;
        this.metaOverflow = false;
        from = i; // the meta line is handed on by finishMeta
        continue;
      }
      // A token: the statement starts here.
      if (!this.inStatement) {
        flush(i);
        this.beginStatement(buf, i);
      }
      if (c === 59 && this.parens === 0 && this.beginDepth > 0) {
        // Only a statement seen whole can be judged where psql did not cut it (see StatementInfo.joins).
        if (this.overflowed) throw new LexerRefusal('a BEGIN ... END body longer than 1 MiB');
        if (this.capturing) this.joins.push(this.capturedBytes + (i - from));
      }
      if (c === 59 && this.parens === 0 && this.beginDepth === 0) {
        this.checkEnd();
        flush(i + 1);
        i++;
        this.word = '';
        this.finishStatement();
        continue;
      }
      if (c === 58) {
        // psql's `::`, and its variables (:name, :'name', :"name", :{?name}): one token each, never a word.
        const end = buf[i + 1] === 58 ? i + 2 : this.variableEnd(buf, i);
        if (end > i + 1) {
          this.noteWord('');
          i = end;
          continue;
        }
      }
      if (c === 40) this.parens++;
      else if (c === 41 && this.parens > 0) this.parens--;
      if (c === 39) {
        this.state = S.Quote;
        this.escapeQuote = this.escapesIn(buf, i);
        this.noteWord('');
        i++;
        continue;
      }
      if (c === 34) {
        this.state = S.Ident;
        this.identHead = '';
        // U&"..." spells a name with escapes, which pg_dump never writes: the sink sees it whole.
        if (this.prefixEnd === i - 1 && this.prefixWord === 'u' && buf[i - 1] === 38) this.suspect = true;
        this.noteWord('');
        i++;
        continue;
      }
      // A `$` inside an identifier was read with its word: here one opens a dollar quote even after a number (`1$a$`), as in psql.
      if (c === 36) {
        const tag = this.dollarTagAt(buf, i);
        if (tag) {
          this.state = S.Dollar;
          this.dollarTag = Buffer.from(tag);
          this.noteWord('');
          i += tag.length;
          continue;
        }
      }
      if (isIdentStart(c)) {
        const j = this.wordEnd(buf, i, final);
        // A word with multibyte characters or cut by the buffer's end is no keyword; psql reads it as one identifier.
        const plain = !this.midWord && this.skip === 0 && j - i <= WORD_LIMIT && !(this.multibyte && buf.subarray(i, j).some((b) => b >= 128));
        const word = plain ? buf.toString('latin1', i, j).toLowerCase() : '';
        const cut = this.midWord && j < n;
        if (word === 'set_config') this.suspect = true;
        if (word === 'stdin' && this.parens === 0) this.stdin = true;
        this.prefixWord = word;
        this.prefixEnd = j;
        this.routineWord(word);
        this.noteWord(word);
        if (cut) return this.hold(buf, j, from, flush);
        i = j;
        continue;
      }
      this.noteWord('');
      i++;
    }
    flush(n);
  }

  /** Hands on what was read before `at` and keeps the rest for the next chunk. */
  private hold(buf: Buffer, at: number, from: number, flush: (to: number) => void): void {
    flush(Math.max(from, at));
    this.pending = Buffer.from(buf.subarray(at));
  }

  private out(bytes: Buffer): void {
    if (this.state === S.Meta) return; // meta lines go whole to finishMeta
    if (this.capturing) {
      this.captured.push(Buffer.from(bytes));
      this.capturedBytes += bytes.length;
      if (this.capturedBytes > this.captureLimit) {
        // Too long to be one the filter rewrites: the sink judges its head, then it streams through unchanged.
        const head = Buffer.concat(this.captured);
        this.capturing = false;
        this.overflowed = true;
        this.captured = [];
        this.sink.overflow?.(head, this.info());
        this.sink.text(head);
      }
      return;
    }
    this.sink.text(bytes);
  }

  private beginStatement(buf: Buffer, at: number): void {
    this.inStatement = true;
    this.parens = 0;
    this.words = [];
    this.wordCount = 0;
    this.beginDepth = 0;
    this.lastWords = ['', ''];
    this.word = '';
    this.suspect = false;
    this.joins = [];
    this.stdin = false;
    this.overflowed = false;
    let j = at;
    while (j < buf.length && isIdentChar(buf[j]) && buf[j] < 128) j++;
    this.firstWord = buf.toString('latin1', at, Math.min(j, at + WORD_LIMIT)).toLowerCase();
    this.capturing = this.sink.wants(this.firstWord);
    this.captured = [];
    this.capturedBytes = 0;
  }

  /** Where the identifier from `i` ends (psql's {identifier}: multibyte characters included); sets midWord when the buffer ends first. */
  private wordEnd(buf: Buffer, i: number, final: boolean): number {
    const n = buf.length;
    let j = i;
    while (j < n) {
      const b = buf[j];
      if (this.multibyte && b >= 128) {
        if (n - j < 4 && !final) break; // its length may depend on the next bytes (GB18030)
        j += this.charLength(buf, j);
      } else if (isIdentChar(b)) j++;
      else return j;
    }
    if (final) {
      if (j > n) this.skip = j - n;
      return Math.min(j, n);
    }
    // The buffer ended in the word, or a multibyte character it may cut starts at j (the caller holds from there).
    this.midWord = true;
    return j;
  }

  /** psql's rule (psqlscan.l): in CREATE [OR REPLACE] FUNCTION|PROCEDURE, BEGIN, CASE within one, and END outside parentheses nest. */
  /**
   * Where a psql variable reference at `i` (a colon) ends, or i + 1 for none (psqlscan.l: variable_char
   * is a letter, digit, _ or a byte ≥ 0x80; a name cut by the buffer's end is read as cut, and a longer
   * name than LOOKAHEAD allows is refused).
   */
  private variableEnd(buf: Buffer, i: number): number {
    const isVariableChar = (b: number) => (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b === 95 || (b >= 48 && b <= 57) || b >= 128;
    const run = (from: number) => {
      let j = from;
      while (j < buf.length && isVariableChar(buf[j])) j += this.multibyte && buf[j] >= 128 ? this.charLength(buf, j) : 1;
      if (j >= buf.length && j - i >= LOOKAHEAD - 4) throw new LexerRefusal(`a psql variable name longer than ${LOOKAHEAD - 8} bytes`);
      return j;
    };
    const open = buf[i + 1];
    if (open === 39 || open === 34) {
      const j = run(i + 2);
      return j > i + 2 && buf[j] === open ? j + 1 : i + 1;
    }
    if (open === 123 && buf[i + 2] === 63) {
      const j = run(i + 3);
      return j > i + 3 && buf[j] === 125 ? j + 1 : i + 1;
    }
    return run(i + 1);
  }

  private routineWord(word: string): void {
    if (!this.inStatement) return;
    if (++this.wordCount <= 4) this.words.push(word);
    const [w0, w1, w2, w3] = this.words;
    const routine = (w: string | undefined) => w === 'function' || w === 'procedure';
    if (w0 !== 'create' || !(routine(w1) || (w1 === 'or' && w2 === 'replace' && routine(w3))) || this.parens > 0) return;
    if (word === 'begin' || (word === 'case' && this.beginDepth > 0)) this.beginDepth++;
    else if (word === 'end' && this.beginDepth > 0) this.beginDepth--;
  }

  private noteWord(word: string): void {
    if (!this.inStatement || this.parens > 0) return;
    this.lastWords = [this.lastWords[1], word];
  }

  private info(): StatementInfo {
    return { firstWord: this.firstWord, lastWords: this.lastWords, suspect: this.suspect, overflowed: this.overflowed, joins: this.joins };
  }

  /**
   * Before a statement's end is handed on: a COPY that puts psql into reading rows must say so where
   * this lexer looks (it ends FROM stdin; pg_dump writes no options after it); and a statement the
   * sink did not see whole goes to LexerSink.uncaptured.
   */
  private checkEnd(): void {
    const [before, last] = this.lastWords;
    if (this.firstWord === 'copy' && this.stdin && !(before === 'from' && last === 'stdin')) throw new LexerRefusal('a COPY ... FROM stdin with options after stdin');
    if (!this.capturing && (this.suspect || this.overflowed)) this.sink.uncaptured?.(this.info());
  }

  /**
   * Does the string starting at `i` take backslash escapes, as psql reads it (psqlscan.l)? E'...'
   * always; B'...', X'...' and U&'...' never; '...' and N'...' when standard_conforming_strings is
   * off. A prefix is a word of its own letter: `name'a\'` is the type name and a plain string.
   */
  private escapesIn(buf: Buffer, i: number): boolean {
    const prefix = this.prefixEnd === i ? this.prefixWord : '';
    if (prefix === 'e') return true;
    if (prefix === 'b' || prefix === 'x') return false;
    if (this.prefixEnd === i - 1 && this.prefixWord === 'u' && buf[i - 1] === 38) return false;
    return !this.standardStrings;
  }

  private identByte(c: number): void {
    if (this.identHead.length < 11) this.identHead += String.fromCharCode(c);
  }

  private finishStatement(): void {
    const info = this.info();
    if (this.capturing) {
      const text = Buffer.concat(this.captured);
      this.captured = [];
      this.capturing = false;
      this.sink.statement(text, info);
    }
    this.inStatement = false;
    this.parens = 0;
    // psql reads COPY data from the line after the one holding the COPY's semicolon.
    if (info.firstWord === 'copy' && info.lastWords[0] === 'from' && info.lastWords[1] === 'stdin') this.copyPending = true;
  }

  private startCopy(): void {
    this.copyPending = false;
    this.state = S.Copy;
    this.atLineStart = true;
    this.sink.copy?.(true);
  }

  private keepMeta(part: Buffer): void {
    if (this.metaOverflow) {
      this.sink.text(part);
      return;
    }
    this.meta.push(Buffer.from(part));
    this.metaBytes += part.length;
    if (this.metaBytes > META_LIMIT) {
      // No line the filter acts on is this long: pass it on as it is.
      this.metaOverflow = true;
      this.sink.text(Buffer.concat(this.meta));
      this.meta = [];
    }
  }

  private finishMeta(eol: string): void {
    this.state = S.Normal;
    this.lineEnded();
    if (this.metaOverflow) {
      if (eol) this.sink.text(Buffer.from(eol));
      return;
    }
    let line = Buffer.concat(this.meta);
    let ending = eol;
    if (line.length && line[line.length - 1] === CR) {
      line = line.subarray(0, line.length - 1);
      ending = `\r${eol}`;
    }
    this.meta = [];
    this.sink.metaLine(line, ending);
  }

  private lineEnded(): void {
    this.atLineStart = true;
  }

  /**
   * `$tag$` at `at` (`$$` included), or null; a digit after `$` is a parameter. psql takes a tag of any
   * length; past LOOKAHEAD bytes this lexer cannot tell, so it refuses (pg_dump's tags are short). In
   * an encoding whose characters can hold ASCII bytes psql reads a tag's characters with their trailing
   * bytes masked, and compares tags so masked: a tag with such characters is refused.
   */
  private dollarTagAt(buf: Buffer, at: number): Buffer | null {
    let j = at + 1;
    if (j < buf.length && buf[j] === 36) return buf.subarray(at, j + 1);
    if (j >= buf.length || !isIdentStart(buf[j]) || buf[j] === 36) return null;
    const isTagChar = (b: number) => isIdentStart(b) || (b >= 48 && b <= 57);
    let multibyte = false;
    while (j < buf.length && j - at < LOOKAHEAD - 2 && isTagChar(buf[j])) {
      if (this.multibyte && buf[j] >= 128) {
        multibyte = true;
        j += this.charLength(buf, j);
      } else j++;
    }
    if (j < buf.length && j - at >= LOOKAHEAD - 2 && isTagChar(buf[j])) throw new LexerRefusal(`a dollar-quote tag longer than ${LOOKAHEAD - 3} bytes`);
    if (buf[j] !== 36) return null;
    if (multibyte) throw new LexerRefusal('a dollar-quote tag with multibyte characters in a client encoding whose characters can hold ASCII bytes');
    return buf.subarray(at, j + 1);
  }

  /** Length of the character at `i` (a byte ≥ 0x80) in the client encoding: psql's PQmblen for the encodings that matter. */
  private charLength(buf: Buffer, i: number): number {
    const c = buf[i];
    // Shift-JIS half-width katakana are single bytes.
    if (SJIS.has(this.encoding)) return c >= 0xa1 && c <= 0xdf ? 1 : 2;
    // GB18030 four-byte sequences have a digit as their second byte.
    if (this.encoding === 'gb18030') return buf[i + 1] >= 0x30 && buf[i + 1] <= 0x39 ? 4 : 2;
    // JOHAB is measured as EUC: SS3 (0x8F) starts three bytes.
    if (this.encoding === 'johab' && c === 0x8f) return 3;
    return 2;
  }
}

/** Input the lexer cannot follow as psql would: the restore is refused rather than misread. */
export class LexerRefusal extends Error {
  constructor(what: string) {
    super(`The dump uses ${what}, which Lifeboat does not follow and pg_dump never writes: it was not made by pg_dump, or was edited.`);
    this.name = 'LexerRefusal';
  }
}
