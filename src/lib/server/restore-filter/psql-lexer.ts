/**
 * Finds top-level statement boundaries in a plain SQL dump the way psql 15 does
 * (src/fe_utils/psqlscan.l, src/bin/psql/mainloop.c), streaming and byte-exact.
 *
 * psql reads its input a line at a time and lexes each line without its LF, so no
 * token spans a line end (a CR inside a line is a newline to the lexer: it ends a --
 * comment and allows 'a'<CR>'b' continuation); settings a statement changes
 * (standard_conforming_strings, client_encoding) apply from the next line; COPY ...
 * FROM stdin data starts on the line after the statement's semicolon, one block per
 * such statement. In SJIS-like client encodings psql hides the trailing bytes of each
 * multibyte character from its lexer (PQmblen), and so does eff() here. Checked
 * against psql 15.18 on tricky and random inputs.
 *
 * Not a security boundary: it has to agree with psql on honest pg_dump output, and to
 * stay bounded in memory on anything else (token texts and dollar tags are capped).
 *
 * scan() reports positions in the buffer it was given. It may stop up to 3 bytes short
 * of the end when it needs the next byte to decide (`-` vs `--`, `\` vs `\;`, a COPY
 * end marker): the caller passes those bytes again, followed by the next chunk.
 */
import { TextDecoder } from 'node:util';

export type Token =
  | { kind: 'word'; text: string } // unquoted identifier or keyword, ASCII letters folded to lower case
  | { kind: 'ident'; text: string; unicode: boolean } // "..." with "" undone; U&"..." still escaped
  | { kind: 'string'; text: string; prefix: string } // '', E'', N'', U&'', B'', X'' ('' undone) or $tag$ ($, no text)
  | { kind: 'op'; text: string } // punctuation; "(" and ")" stand for a whole parenthesised group
  | { kind: 'other'; text: string }; // numbers, $1, :variables

export interface LexedStatement {
  /** The first MAX_TOKENS tokens outside parentheses (only the first if the handler did not want them). */
  tokens: readonly Token[];
  /** More top-level tokens followed. */
  truncated: boolean;
  /** Ended by a semicolon (false: by the end of the input). */
  terminated: boolean;
}

/** Positions are indexes into the buffer being scanned. */
export interface LexerHandler {
  statementStart?(at: number): void;
  /** Whether the tokens of a statement starting with this word (lower case; '' if no word) are wanted. */
  wantsTokens?(firstWord: string): boolean;
  token?(token: Token, tokens: readonly Token[]): void;
  statementEnd?(end: number, statement: LexedStatement): void;
  metaStart?(at: number): void;
  metaName?(at: number, name: string): void;
  /** `end` is the position of the line's LF (or the end of the input). */
  metaEnd?(end: number, line: string): void;
  /** A `--` comment that starts a line outside any statement; `end` is where it stops. */
  lineComment?(end: number, text: string): void;
  copyStart?(at: number): void;
  copyEnd?(end: number): void;
}

export interface LexerSettings {
  standardConformingStrings?: boolean;
  clientEncoding?: string;
}

export const MAX_TOKENS = 64;
const MAX_TEXT = 256;
const MAX_META = 1024;
const MAX_TAG = 64;

const LF = 0x0a, CR = 0x0d, TAB = 0x09, FF = 0x0c, SPACE = 0x20, DQUOTE = 0x22, DOLLAR = 0x24, AMP = 0x26;
const QUOTE = 0x27, LPAREN = 0x28, RPAREN = 0x29, STAR = 0x2a, DASH = 0x2d, DOT = 0x2e, SLASH = 0x2f;
const COLON = 0x3a, SEMI = 0x3b, EQUALS = 0x3d, BACKSLASH = 0x5c;
const COPY_MARK = Buffer.from('\n\\.');

const IDENT_START = new Uint8Array(256);
const DOLQ_CONT = new Uint8Array(256); // also psql's variable_char
const IDENT_CONT = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const start = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c >= 0x80;
  const digit = c >= 0x30 && c <= 0x39;
  IDENT_START[c] = start ? 1 : 0;
  DOLQ_CONT[c] = start || digit ? 1 : 0;
  IDENT_CONT[c] = start || digit || c === DOLLAR ? 1 : 0;
}
/** Shared single-character punctuation tokens (tokens are never changed). */
const OPS: Token[] = Array.from({ length: 128 }, (_, c) => ({ kind: 'op', text: String.fromCharCode(c) }));
const fold = (c: number) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isRoutine = (c: number) => c === 0x66 || c === 0x70; // f(unction), p(rocedure)
const isWord = (token: Token, word: string) => token.kind === 'word' && token.text === word;
const wordAt = (tokens: readonly Token[], i: number) => (tokens[i]?.kind === 'word' ? tokens[i].text : undefined);

// Lexer states (psqlscan.l's start conditions, plus the middle of tokens it matches at once).
const INITIAL = 0, LINE_COMMENT = 1, BLOCK_COMMENT = 2, IDENT = 3, NUMBER = 4, VARIABLE = 5, DOLLAR_START = 6;
const PARAM = 7, U_AMP = 8, XQ = 9, XE = 10, XUS = 11, XB = 12, XH = 13, XQS = 14, XD = 15, XUI = 16, XDOLQ = 17;
const META = 18, COPY = 19;

// Words psql's BEGIN ... END rule looks at (it remembers the first letters of the first four).
const ROUTINE_WORDS = ['create', 'function', 'procedure', 'or', 'replace'].map((w) => Buffer.from(w));
const BLOCK_WORDS = ['begin', 'case', 'end'].map((w) => Buffer.from(w));

// Client encodings psql cannot lex byte by byte ("unsafe": not valid server encodings).
const MB_NONE = 0, MB_SJIS = 1, MB_TWO = 2, MB_GB18030 = 3, MB_JOHAB = 4;
const MB_ENCODINGS: Record<string, number> = {
  sjis: MB_SJIS, shiftjis: MB_SJIS, mskanji: MB_SJIS, win932: MB_SJIS, windows932: MB_SJIS, shiftjis2004: MB_SJIS,
  big5: MB_TWO, win950: MB_TWO, windows950: MB_TWO, gbk: MB_TWO, win936: MB_TWO, windows936: MB_TWO,
  uhc: MB_TWO, win949: MB_TWO, windows949: MB_TWO, gb18030: MB_GB18030, johab: MB_JOHAB,
};
const DECODER_LABELS: Record<string, string> = {
  sjis: 'shift_jis', shiftjis: 'shift_jis', mskanji: 'shift_jis', win932: 'shift_jis', windows932: 'shift_jis',
  shiftjis2004: 'shift_jis', big5: 'big5', win950: 'big5', windows950: 'big5', gbk: 'gbk', win936: 'gbk',
  windows936: 'gbk', euccn: 'gbk', gb18030: 'gb18030', uhc: 'euc-kr', win949: 'euc-kr', windows949: 'euc-kr',
  euckr: 'euc-kr', eucjp: 'euc-jp', latin1: 'latin1', koi8r: 'koi8-r', koi8u: 'koi8-u', win1250: 'windows-1250',
  win1251: 'windows-1251', win1252: 'windows-1252',
};

/** PostgreSQL's clean_encoding_name: case and punctuation do not matter ("Shift_JIS" is "sjis"'s alias). */
export const cleanEncodingName = (name: string) => name.toLowerCase().replace(/[^a-z0-9]/g, '');

function decoderFor(encoding: string): TextDecoder {
  try {
    return new TextDecoder(DECODER_LABELS[cleanEncodingName(encoding)] ?? 'utf-8');
  } catch {
    return new TextDecoder('utf-8');
  }
}

/** Identity of a dollar-quote tag in bounded memory: its first bytes, length and a hash. */
class DollarTag {
  private readonly bytes = Buffer.alloc(MAX_TAG);
  length = 0;
  private hash = 0;
  reset(): void {
    this.length = 0;
    this.hash = 0x811c9dc5;
  }
  add(c: number): void {
    if (this.length < MAX_TAG) this.bytes[this.length] = c;
    this.length++;
    this.hash = Math.imul(this.hash ^ c, 16777619);
  }
  first(): number {
    return this.bytes[0];
  }
  equals(other: DollarTag): boolean {
    if (this.length !== other.length || this.hash !== other.hash) return false;
    return this.bytes.compare(other.bytes, 0, Math.min(this.length, MAX_TAG), 0, Math.min(this.length, MAX_TAG)) === 0;
  }
}

export class PsqlLexer {
  private readonly handler: LexerHandler;
  private readonly initialEncoding: string;
  private scs: boolean;
  private encoding: string;
  private mb = MB_NONE;
  private decoder: TextDecoder;
  private pendingScs: boolean | null = null;
  private pendingEncoding: string | null = null;

  private buf: Buffer = Buffer.alloc(0);
  private n = 0;
  private final = false;
  private stopped = false;
  private base = 0; // stream offset of buf[0]
  private lastByteLF = true; // the input so far ends a line (the start counts)
  private bomEnd = -1;
  private state = INITIAL;

  // Multibyte masking: bytes in (leadAbs, maskUntil) read as 0xFF, as in psqlscan_prepare_buffer.
  private leadAbs = -1;
  private maskUntil = -1;
  private gbUndecided = false;

  // The statement being read.
  private statement = false;
  private parenDepth = 0;
  private beginDepth = 0;
  private identCount = 0;
  private readonly idents = new Uint8Array(4);
  private tokens: Token[] = [];
  private topCount = 0;
  private collect = true;
  private copyState = 0; // 1: COPY, 2: COPY ... FROM, 3: not COPY FROM stdin, 4: COPY ... FROM stdin
  private pendingCopies = 0;

  // The token being read.
  private readonly text = Buffer.alloc(MAX_TEXT);
  private textLen = 0;
  private identLen = 0;
  private identFirst = 0;
  private stringState = XQ;
  private stringPrefix = '';
  private xqsUsed = false;
  private xqsNewline = false;
  private xqsComment = false;
  private xqsDash = false;
  private xcDepth = 0;
  private numberDot = false;
  private numberJunk = false;
  private tagPhase = 0;
  private readonly openTag = new DollarTag();
  private readonly candidate = new DollarTag();
  private commentCapture = false;
  private readonly metaText = Buffer.alloc(MAX_META);
  private metaLen = 0;
  private metaNamed = false;
  private copyLineStart = false;
  private copySaved = INITIAL;

  /** Report `--` comments that start a line (lineComment); off when nobody needs them. */
  captureComments = true;

  constructor(handler: LexerHandler, settings: LexerSettings = {}) {
    this.handler = handler;
    this.scs = settings.standardConformingStrings ?? true;
    this.initialEncoding = settings.clientEncoding ?? 'UTF8';
    this.encoding = this.initialEncoding;
    this.decoder = decoderFor(this.encoding);
    this.setEncoding(this.encoding);
  }

  get standardConformingStrings(): boolean {
    return this.scs;
  }

  get clientEncoding(): string {
    return this.encoding;
  }

  /** Inside a statement (psql's query buffer is not empty). */
  get inStatement(): boolean {
    return this.statement;
  }

  /** Lexes buf; returns how many bytes were consumed (all of them when final). */
  scan(buf: Buffer, final: boolean): number {
    this.buf = buf;
    this.n = buf.length;
    this.final = final;
    this.stopped = false;
    let i = 0;
    if (this.base === 0 && this.bomEnd < 0) {
      // psql skips a UTF-8 byte-order mark on the first line.
      const bom = [0xef, 0xbb, 0xbf];
      const k = Math.min(3, this.n);
      const prefix = bom.slice(0, k).every((b, j) => buf[j] === b) && this.mb === MB_NONE && /^utf-?8$/i.test(this.encoding);
      if (prefix && k < 3 && !final) return 0;
      this.bomEnd = prefix && k === 3 ? 3 : 0;
      i = this.bomEnd;
    }
    while (i < this.n && !this.stopped) i = this.step(i);
    if (final) this.finish();
    if (i > 0) this.lastByteLF = buf[i - 1] === LF;
    this.base += i;
    return i;
  }

  private step(i: number): number {
    switch (this.state) {
      case INITIAL: return this.initial(i);
      case LINE_COMMENT: return this.lineComment(i);
      case BLOCK_COMMENT: return this.blockComment(i);
      case IDENT: return this.identifier(i);
      case NUMBER: case VARIABLE: case PARAM: return this.simpleToken(i);
      case DOLLAR_START: return this.dollarStart(i);
      case U_AMP: return this.uAmp(i);
      case XQ: case XUS: case XB: case XH: return this.quoted(i);
      case XE: return this.escapeString(i);
      case XQS: return this.quoteStop(i);
      case XD: case XUI: return this.quotedIdent(i);
      case XDOLQ: return this.dollarQuoted(i);
      case META: return this.meta(i);
      default: return this.copyData(i);
    }
  }

  /** The byte psql's lexer sees at i: trailing bytes of a multibyte character read as 0xFF. Call in order. */
  private eff(i: number): number {
    const c = this.buf[i];
    if (this.mb === MB_NONE) return c;
    if (c === LF) {
      this.maskUntil = -1;
      return c;
    }
    const abs = this.base + i;
    if (abs > this.leadAbs && abs < this.maskUntil) {
      if (this.gbUndecided && abs === this.leadAbs + 1) {
        this.gbUndecided = false;
        if (isDigit(c)) this.maskUntil = this.leadAbs + 4;
      }
      return 0xff;
    }
    if (c >= 0x80) {
      this.leadAbs = abs;
      this.maskUntil = abs + this.mblen(c, i);
    }
    return c;
  }

  /** PQmblen for the unsafe encodings (src/common/wchar.c). */
  private mblen(c: number, i: number): number {
    if (this.mb === MB_SJIS) return c >= 0xa1 && c <= 0xdf ? 1 : 2;
    if (this.mb === MB_JOHAB) return c === 0x8f ? 3 : 2;
    if (this.mb !== MB_GB18030) return 2;
    this.gbUndecided = i + 1 >= this.n && !this.final;
    return i + 1 < this.n && isDigit(this.buf[i + 1]) ? 4 : 2;
  }

  private stop(i: number): number {
    this.stopped = true;
    return i;
  }

  /** True (and stops the scan) when the byte after i is not here yet. */
  private needNext(i: number): boolean {
    if (i + 1 < this.n || this.final) return false;
    this.stopped = true;
    return true;
  }

  private peek(i: number): number {
    return i < this.n ? this.eff(i) : -1;
  }

  /** No line end needs attention, so quoted text may be skipped with indexOf. */
  private fast(): boolean {
    return this.mb === MB_NONE && this.pendingCopies === 0 && this.pendingScs === null && this.pendingEncoding === null;
  }

  private atLineStart(i: number): boolean {
    return this.base + i === this.bomEnd || (i > 0 ? this.buf[i - 1] === LF : this.lastByteLF);
  }

  /** psql has read a whole line: what the last statements changed takes effect, COPY data may start. */
  private lineEnd(i: number): void {
    this.maskUntil = -1;
    if (this.pendingScs !== null) this.scs = this.pendingScs;
    if (this.pendingEncoding !== null) this.setEncoding(this.pendingEncoding);
    this.pendingScs = this.pendingEncoding = null;
    if (this.pendingCopies > 0) {
      this.copySaved = this.state;
      this.state = COPY;
      this.copyLineStart = true;
      this.handler.copyStart?.(i + 1);
    }
  }

  private setEncoding(name: string): void {
    this.encoding = name;
    this.mb = MB_ENCODINGS[cleanEncodingName(name)] ?? MB_NONE;
    this.decoder = decoderFor(name);
  }

  private initial(i: number): number {
    const { n, buf } = this;
    const plain = this.mb === MB_NONE;
    while (i < n) {
      const c = plain ? buf[i] : this.eff(i);
      if (c === SPACE || c === TAB || c === CR || c === FF) {
        i++;
        continue;
      }
      if (c === LF) {
        this.lineEnd(i);
        return i + 1;
      }
      if (c === DASH || c === SLASH || c === BACKSLASH || c === COLON) {
        if (this.needNext(i)) return i;
        const d = this.peek(i + 1);
        if (c === DASH && d === DASH) {
          this.commentCapture = this.captureComments && !this.statement && this.atLineStart(i);
          this.textLen = 0;
          this.state = LINE_COMMENT;
          return i;
        }
        if (c === BACKSLASH && d !== SEMI && d !== COLON) return this.openMeta(i);
        this.startStatement(i);
        if (c === SLASH && d === STAR) {
          this.xcDepth = 0;
          this.state = BLOCK_COMMENT;
          return i + 2;
        }
        if (c === BACKSLASH) {
          // psql's \; and \: put the character itself into the query.
          this.punct(String.fromCharCode(d));
          if (d === SEMI) this.identCount = 0;
          i += 2;
          continue;
        }
        if (c === COLON && (d === COLON || d === EQUALS)) {
          this.punct(d === COLON ? '::' : ':=');
          i += 2;
          continue;
        }
        if (c === COLON && d >= 0 && DOLQ_CONT[d]) {
          this.textLen = 0;
          this.state = VARIABLE;
          return i + 1;
        }
        this.punct(String.fromCharCode(c));
        i++;
        continue;
      }
      this.startStatement(i);
      if (c === QUOTE) return this.openString(this.scs ? XQ : XE, '', i + 1);
      if (c === DQUOTE) return this.openString(XD, '', i + 1);
      if (c === DOLLAR) {
        this.state = DOLLAR_START;
        this.tagPhase = 0;
        return i + 1;
      }
      if (isDigit(c)) {
        this.textLen = 0;
        this.numberDot = this.numberJunk = false;
        this.state = NUMBER;
        return i;
      }
      if (IDENT_START[c]) {
        this.textLen = 0;
        this.addText(fold(this.buf[i]));
        this.identLen = 1;
        this.identFirst = fold(c);
        this.state = IDENT;
        return i + 1;
      }
      if (c === LPAREN) {
        this.punct('(');
        this.parenDepth++;
      } else if (c === RPAREN) {
        if (this.parenDepth > 0) this.parenDepth--;
        this.punct(')');
      } else if (c === SEMI && this.parenDepth === 0 && this.beginDepth === 0) {
        this.endStatement(i + 1, true);
        return i + 1;
      } else this.punct(String.fromCharCode(c));
      i++;
    }
    return i;
  }

  private lineComment(i: number): number {
    if (this.mb === MB_NONE && !this.commentCapture) {
      const buf = this.buf;
      while (i < this.n && buf[i] !== LF && buf[i] !== CR) i++;
      if (i < this.n) this.state = INITIAL;
      return i;
    }
    for (; i < this.n; i++) {
      const c = this.eff(i);
      if (c === LF || c === CR) {
        this.state = INITIAL;
        if (this.commentCapture) this.handler.lineComment?.(i, this.takeText());
        return i;
      }
      if (this.commentCapture) this.addText(this.buf[i]);
    }
    return i;
  }

  private blockComment(i: number): number {
    while (i < this.n) {
      const c = this.eff(i);
      if (c === LF) {
        this.lineEnd(i);
        return i + 1;
      }
      if (c === SLASH || c === STAR) {
        if (this.needNext(i)) return i;
        const d = this.peek(i + 1);
        if (c === SLASH && d === STAR) {
          this.xcDepth++;
          i += 2;
          continue;
        }
        if (c === STAR && d === SLASH) {
          if (this.xcDepth-- === 0) this.state = INITIAL;
          i += 2;
          if (this.state === INITIAL) return i;
          continue;
        }
      }
      i++;
    }
    return i;
  }

  private identifier(i: number): number {
    const { n, buf } = this;
    const plain = this.mb === MB_NONE;
    while (i < n) {
      const c = plain ? buf[i] : this.eff(i);
      if (IDENT_CONT[c]) {
        this.addText(fold(buf[i]));
        this.identLen++;
        i++;
        continue;
      }
      if (this.identLen === 1) {
        // E'', B'', X'', N'' and U&'' / U&"" begin with what looked like a one-letter identifier.
        const f = this.identFirst;
        if (c === QUOTE && f === 0x65) return this.openString(XE, 'e', i + 1);
        if (c === QUOTE && f === 0x62) return this.openString(XB, 'b', i + 1);
        if (c === QUOTE && f === 0x78) return this.openString(XH, 'x', i + 1);
        if (c === QUOTE && f === 0x6e) return this.openString(this.scs ? XQ : XE, 'n', i + 1);
        if (c === AMP && f === 0x75) {
          this.state = U_AMP;
          return i + 1;
        }
      }
      this.endIdentifier();
      this.state = INITIAL;
      return i;
    }
    return i;
  }

  private endIdentifier(): void {
    // psql's heuristic for CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ... END bodies.
    const ids = this.idents;
    if (this.identCount === 0) ids.fill(0);
    if (this.identCount < 4) {
      const k = this.keyword(ROUTINE_WORDS);
      if (k >= 0) ids[this.identCount] = ROUTINE_WORDS[k][0];
    }
    this.identCount++;
    if (ids[0] === 0x63 && (isRoutine(ids[1]) || (ids[1] === 0x6f && ids[2] === 0x72 && isRoutine(ids[3]))) && this.parenDepth === 0) {
      const k = this.keyword(BLOCK_WORDS);
      if (k === 0) this.beginDepth++;
      else if (k === 1) {
        if (this.beginDepth >= 1) this.beginDepth++;
      } else if (k === 2 && this.beginDepth > 0) this.beginDepth--;
    }
    if (this.wantTop()) this.addTop({ kind: 'word', text: this.takeText() });
  }

  /** Which of the words (lower case) the identifier just read is, or -1. */
  private keyword(words: Buffer[]): number {
    const length = this.identLen;
    const text = this.text;
    if (length > 9) return -1;
    next: for (let k = 0; k < words.length; k++) {
      const word = words[k];
      if (word.length !== length) continue;
      for (let j = 0; j < length; j++) if (text[j] !== word[j]) continue next;
      return k;
    }
    return -1;
  }

  /**
   * Numbers, $1 parameters and :variables. psql 15 reads a number (1, 1.5, 1.) and any
   * identifier characters right after it as one token ({integer_junk}): 1e'x' holds no E string.
   */
  private simpleToken(i: number): number {
    const variable = this.state === VARIABLE;
    for (; i < this.n; i++) {
      const c = this.eff(i);
      if (variable ? !DOLQ_CONT[c] : !(this.numberJunk ? IDENT_CONT[c] : isDigit(c) || IDENT_START[c])) {
        if (c !== DOT || this.state !== NUMBER || this.numberDot || this.numberJunk) break;
        if (this.needNext(i)) return i;
        if (this.peek(i + 1) === DOT) break; // 1..10
        this.numberDot = true;
      } else if (!variable && !isDigit(c)) this.numberJunk = true; // an identifier begins
      this.addText(c);
    }
    if (i === this.n && !this.final) return i;
    const prefix = variable ? ':' : this.state === PARAM ? '$' : '';
    if (this.wantTop()) this.addTop({ kind: 'other', text: prefix + this.takeText('latin1') });
    this.state = INITIAL;
    return i;
  }

  /** After a `$`: a parameter, a dollar-quote tag, or just a `$`. */
  private dollarStart(i: number): number {
    const c = this.eff(i);
    if (this.tagPhase === 0) {
      this.openTag.reset();
      if (isDigit(c)) {
        this.textLen = 0;
        this.numberDot = this.numberJunk = false;
        this.state = PARAM;
        return i;
      }
      if (c === DOLLAR) return this.openDollarQuote(i + 1);
      if (!IDENT_START[c]) {
        this.punct('$', 'other');
        this.state = INITIAL;
        return i;
      }
      this.tagPhase = 1;
      this.textLen = 0;
    }
    for (; i < this.n; i++) {
      const t = this.eff(i);
      if (t === DOLLAR) return this.openDollarQuote(i + 1);
      if (!DOLQ_CONT[t]) break;
      this.openTag.add(t);
      this.addText(fold(this.buf[i]));
    }
    if (i === this.n && !this.final) return i;
    // psql's {dolqfailed}: only the `$` was a token; the tag is read again as an identifier.
    this.punct('$', 'other');
    this.identLen = this.openTag.length;
    this.identFirst = fold(this.openTag.first());
    this.state = IDENT;
    return i;
  }

  private openDollarQuote(i: number): number {
    this.state = XDOLQ;
    this.tagPhase = 0;
    return i;
  }

  private uAmp(i: number): number {
    const c = this.eff(i);
    if (c === QUOTE) return this.openString(XUS, 'u', i + 1);
    if (c === DQUOTE) return this.openString(XUI, '', i + 1);
    // psql's {xufailed}: a lone "u" (not an identifier), then "&".
    this.punct('u', 'other');
    this.punct('&');
    this.state = INITIAL;
    return i;
  }

  private openString(state: number, prefix: string, i: number): number {
    this.state = this.stringState = state;
    this.stringPrefix = prefix;
    // A "full" text buffer copies nothing: the contents of strings nobody looks at are not kept.
    const wanted = this.parenDepth === 0 && (this.topCount === 0 || this.copyState === 1 || this.copyState === 2 || (this.collect && this.tokens.length < MAX_TOKENS));
    this.textLen = wanted ? 0 : MAX_TEXT;
    return i;
  }

  /** '...', U&'...' ('' doubles a quote) and B'...', X'...' (they end at the first quote). */
  private quoted(i: number): number {
    const buf = this.buf;
    const doubles = this.state === XQ || this.state === XUS;
    while (i < this.n) {
      if (this.fast()) {
        const q = buf.indexOf(QUOTE, i);
        const end = q < 0 ? this.n : q;
        this.addRange(i, end);
        if (q < 0) return this.n;
        i = q;
      }
      const c = this.eff(i);
      if (c === QUOTE) {
        if (doubles) {
          if (this.needNext(i)) return i;
          if (this.peek(i + 1) === QUOTE) {
            this.addText(QUOTE);
            i += 2;
            continue;
          }
        }
        return this.closeQuote(i + 1);
      }
      this.addText(buf[i]);
      if (c === LF) {
        this.lineEnd(i);
        return i + 1;
      }
      i++;
    }
    return i;
  }

  /** E'...' (and '...' while standard_conforming_strings is off): a backslash escapes the next byte. */
  private escapeString(i: number): number {
    while (i < this.n) {
      const c = this.eff(i);
      if (c === BACKSLASH || c === QUOTE) {
        if (this.needNext(i)) return i;
        const d = this.peek(i + 1);
        if (c === QUOTE) {
          if (d !== QUOTE) return this.closeQuote(i + 1);
          this.addText(QUOTE);
          i += 2;
          continue;
        }
        this.addText(this.buf[i]);
        // psql lexes a line without its LF: a backslash at the end of a line escapes nothing.
        if (d === LF || d < 0) {
          i++;
          continue;
        }
        this.addText(this.buf[i + 1]);
        i += 2;
        continue;
      }
      this.addText(this.buf[i]);
      if (c === LF) {
        this.lineEnd(i);
        return i + 1;
      }
      i++;
    }
    return i;
  }

  private closeQuote(i: number): number {
    this.state = XQS;
    this.xqsUsed = this.xqsNewline = this.xqsComment = this.xqsDash = false;
    return i;
  }

  /**
   * After a closing quote: whitespace holding a newline and then a quote continue the
   * string (SQL's 'a'<newline>'b'). The newline can only be a CR inside psql's line.
   */
  private quoteStop(i: number): number {
    while (i < this.n) {
      const c = this.eff(i);
      if (c === LF) {
        if (this.xqsUsed) return this.endString(i);
        // The quote ended its line: psql looks for the continuation on the next one.
        this.lineEnd(i);
        return i + 1;
      }
      if (this.xqsComment) {
        if (c === CR) {
          this.xqsComment = false;
          this.xqsNewline = true;
        }
        i++;
        continue;
      }
      if (this.xqsDash) {
        if (c !== DASH) return this.endString(i);
        this.xqsDash = false;
        this.xqsComment = true;
        i++;
        continue;
      }
      if (c === QUOTE && this.xqsNewline) {
        this.state = this.stringState;
        return i + 1;
      }
      if (c !== SPACE && c !== TAB && c !== FF && c !== CR && c !== DASH) return this.endString(i);
      this.xqsUsed = true;
      if (c === CR) this.xqsNewline = true;
      if (c === DASH) this.xqsDash = true;
      i++;
    }
    return i;
  }

  private endString(i: number): number {
    if (this.wantTop()) this.addTop({ kind: 'string', text: this.takeText(), prefix: this.stringPrefix });
    if (this.xqsDash) this.punct('-');
    this.state = INITIAL;
    return i;
  }

  private quotedIdent(i: number): number {
    const buf = this.buf;
    while (i < this.n) {
      if (this.fast()) {
        const q = buf.indexOf(DQUOTE, i);
        const end = q < 0 ? this.n : q;
        this.addRange(i, end);
        if (q < 0) return this.n;
        i = q;
      }
      const c = this.eff(i);
      if (c === DQUOTE) {
        if (this.needNext(i)) return i;
        if (this.peek(i + 1) === DQUOTE) {
          this.addText(DQUOTE);
          i += 2;
          continue;
        }
        if (this.wantTop()) this.addTop({ kind: 'ident', text: this.takeText(), unicode: this.state === XUI });
        this.state = INITIAL;
        return i + 1;
      }
      this.addText(buf[i]);
      if (c === LF) {
        this.lineEnd(i);
        return i + 1;
      }
      i++;
    }
    return i;
  }

  /** Inside $tag$...$tag$: tagPhase 0 content, 1 after a `$`, 2 reading a candidate tag. */
  private dollarQuoted(i: number): number {
    while (i < this.n) {
      if (this.tagPhase === 0 && this.fast()) {
        const d = this.buf.indexOf(DOLLAR, i);
        if (d < 0) return this.n;
        i = d;
      }
      const c = this.eff(i);
      if (c === LF) {
        this.tagPhase = 0;
        this.lineEnd(i);
        return i + 1;
      }
      if (c === DOLLAR) {
        if (this.tagPhase !== 0 && this.candidate.equals(this.openTag)) {
          if (this.wantTop()) this.addTop({ kind: 'string', text: '', prefix: '$' });
          this.state = INITIAL;
          return i + 1;
        }
        // Not our tag: this `$` may still open the closing one ($a$...$junk$a$).
        this.tagPhase = 1;
        this.candidate.reset();
      } else if (this.tagPhase !== 0 && (this.tagPhase === 1 ? IDENT_START[c] : DOLQ_CONT[c])) {
        this.candidate.add(c);
        this.tagPhase = 2;
      } else if (this.tagPhase !== 0) {
        this.tagPhase = 0;
        continue; // read this byte again as content
      }
      i++;
    }
    return i;
  }

  private openMeta(i: number): number {
    this.handler.metaStart?.(i);
    this.state = META;
    this.metaNamed = false;
    this.metaLen = 0;
    this.addMeta(i, i + 1);
    return i + 1;
  }

  /** A backslash command runs to the end of its line (psql eats any arguments it does not use). */
  private meta(i: number): number {
    while (i < this.n) {
      if (!this.metaNamed) {
        const c = this.eff(i);
        const nameEnd = c === LF || c === SPACE || c === TAB || c === CR || c === FF || c === BACKSLASH;
        if (nameEnd || this.metaLen > 64) {
          this.metaNamed = true;
          this.handler.metaName?.(i, this.metaText.toString('latin1', 1, Math.min(this.metaLen, 65)));
          continue;
        }
        this.addMeta(i, i + 1);
        i++;
        continue;
      }
      const lf = this.buf.indexOf(LF, i);
      const end = lf < 0 ? this.n : lf;
      this.addMeta(i, end);
      if (lf < 0) return this.n;
      this.state = INITIAL;
      this.handler.metaEnd?.(lf, this.metaLine());
      return lf;
    }
    return i;
  }

  private metaLine(): string {
    return this.decoder.decode(this.metaText.subarray(0, Math.min(this.metaLen, MAX_META)));
  }

  private addMeta(from: number, to: number): void {
    const room = MAX_META - this.metaLen;
    if (room > 0) this.buf.copy(this.metaText, this.metaLen, from, Math.min(to, from + room));
    this.metaLen += to - from;
  }

  /** COPY data: passed over with indexOf up to a line that is exactly `\.` (psql's handleCopyIn). */
  private copyData(i: number): number {
    const buf = this.buf, n = this.n;
    for (;;) {
      if (this.copyLineStart) {
        const end = copyEndMarker(buf, i, n, this.final);
        if (end < 0) return i === n ? n : this.stop(i);
        if (end > 0) {
          this.handler.copyEnd?.(end);
          if (--this.pendingCopies > 0) {
            this.handler.copyStart?.(end);
            i = end;
            continue;
          }
          this.state = this.copySaved;
          this.maskUntil = -1;
          return end;
        }
        this.copyLineStart = false;
      }
      const q = buf.indexOf(COPY_MARK, i);
      if (q >= 0) {
        i = q + 1;
        this.copyLineStart = true;
        continue;
      }
      // No marker here; the next buffer may begin a line, or finish a `\` starting one.
      if (n - 1 >= i && buf[n - 1] === LF) this.copyLineStart = true;
      else if (n - 2 >= i && buf[n - 2] === LF && buf[n - 1] === BACKSLASH && !this.final) {
        this.copyLineStart = true;
        return this.stop(n - 1);
      }
      return n;
    }
  }

  private startStatement(at: number): void {
    if (this.statement) return;
    this.statement = true;
    this.handler.statementStart?.(at);
  }

  private endStatement(end: number, terminated: boolean): void {
    const statement: LexedStatement = { tokens: this.tokens, truncated: this.topCount > this.tokens.length, terminated };
    if (this.copyState === 4 && terminated) this.pendingCopies++;
    this.trackSettings(this.tokens);
    this.statement = false;
    this.identCount = 0;
    this.tokens = [];
    this.topCount = 0;
    this.copyState = 0;
    this.handler.statementEnd?.(end, statement);
  }

  /** SET/RESET of standard_conforming_strings and client_encoding; psql follows them from the next line. */
  private trackSettings(tokens: readonly Token[]): void {
    const verb = wordAt(tokens, 0);
    if (verb === 'reset') {
      const name = wordAt(tokens, 1);
      if (name === 'all' || name === 'standard_conforming_strings') this.pendingScs = true;
      if (name === 'all' || name === 'client_encoding') this.pendingEncoding = this.initialEncoding;
      return;
    }
    if (verb !== 'set') return;
    let k = wordAt(tokens, 1) === 'session' || wordAt(tokens, 1) === 'local' ? 2 : 1;
    const name = wordAt(tokens, k);
    if (name !== 'names' && name !== 'client_encoding' && name !== 'standard_conforming_strings') return;
    if (name !== 'names') k += wordAt(tokens, k + 1) === 'to' || tokens[k + 1]?.text === '=' ? 2 : 1;
    else k++;
    const value = tokens[k]?.text;
    if (value === undefined) return;
    const isDefault = value.toLowerCase() === 'default';
    if (name === 'standard_conforming_strings') this.pendingScs = isDefault ? true : (parseBool(value.toLowerCase()) ?? this.scs);
    else this.pendingEncoding = isDefault ? this.initialEncoding : value;
  }

  /** Whether the next top-level token is looked at (else it is only counted). */
  private wantTop(): boolean {
    if (this.parenDepth !== 0) return false;
    if (this.topCount === 0 || this.copyState === 1 || this.copyState === 2) return true;
    if (this.collect && this.tokens.length < MAX_TOKENS) return true;
    this.topCount++;
    return false;
  }

  private punct(text: string, kind: 'op' | 'other' = 'op'): void {
    if (this.wantTop()) this.addTop(kind === 'op' && text.length === 1 ? OPS[text.charCodeAt(0)] : { kind, text });
  }

  private addTop(token: Token): void {
    this.topCount++;
    // COPY ... FROM stdin is decided by the first top-level FROM, whatever the token cap.
    if (this.topCount === 1) {
      this.copyState = isWord(token, 'copy') ? 1 : 3;
      // Tokens of statements nobody looks at are not kept (INSERT, CREATE TABLE ... in bulk).
      const word = token.kind === 'word' ? token.text : '';
      this.collect = word === 'set' || word === 'reset' || (this.handler.wantsTokens?.(word) ?? true);
    } else if (this.copyState === 1 && isWord(token, 'from')) this.copyState = 2;
    else if (this.copyState === 2) this.copyState = isWord(token, 'stdin') ? 4 : 3;
    if ((this.collect || this.topCount === 1) && this.tokens.length < MAX_TOKENS) {
      this.tokens.push(token);
      this.handler.token?.(token, this.tokens);
    }
  }

  private addText(c: number): void {
    if (this.textLen < MAX_TEXT) this.text[this.textLen] = c;
    this.textLen++;
  }

  private addRange(from: number, to: number): void {
    const room = MAX_TEXT - this.textLen;
    if (room > 0 && to > from) this.buf.copy(this.text, this.textLen, from, Math.min(to, from + room));
    this.textLen += to - from;
  }

  private takeText(encoding?: 'latin1'): string {
    const length = Math.min(this.textLen, MAX_TEXT);
    const text = this.text;
    this.textLen = 0;
    if (length <= 16) {
      // Short ASCII (most words): cheaper than a Buffer.toString call.
      let out = '';
      for (let i = 0; i < length; i++) {
        if (text[i] >= 0x80 && !encoding) return this.decoder.decode(text.subarray(0, length));
        out += String.fromCharCode(text[i]);
      }
      return out;
    }
    let ascii = true;
    for (let i = 0; i < length && ascii; i++) ascii = text[i] < 0x80;
    if (encoding || ascii) return text.toString('latin1', 0, length);
    return this.decoder.decode(text.subarray(0, length));
  }

  /** End of input: what psql does with an unfinished line and an unterminated statement. */
  private finish(): void {
    switch (this.state) {
      case LINE_COMMENT:
        if (this.commentCapture) this.handler.lineComment?.(this.n, this.takeText());
        break;
      case IDENT:
        this.endIdentifier();
        break;
      case NUMBER: case VARIABLE: case PARAM:
        this.simpleToken(this.n);
        break;
      case DOLLAR_START:
        this.punct('$', 'other');
        if (this.tagPhase === 1) {
          this.identLen = this.openTag.length;
          this.endIdentifier();
        }
        break;
      case U_AMP:
        this.punct('u', 'other');
        this.punct('&');
        break;
      case XQS:
        this.endString(this.n);
        break;
      case META:
        if (!this.metaNamed) this.handler.metaName?.(this.n, this.metaText.toString('latin1', 1, Math.min(this.metaLen, 65)));
        this.handler.metaEnd?.(this.n, this.metaLine());
        break;
      case COPY:
        this.handler.copyEnd?.(this.n);
        this.pendingCopies = 0;
        break;
    }
    this.state = INITIAL;
    if (this.statement) this.endStatement(this.n, false);
  }
}

/** At a line start in COPY data: the end after a `\.` line, 0 if the line is data, -1 if undecided yet. */
function copyEndMarker(buf: Buffer, p: number, n: number, final: boolean): number {
  const more = final ? 0 : -1;
  if (p >= n) return more;
  if (buf[p] !== BACKSLASH) return 0;
  if (p + 1 >= n) return more;
  if (buf[p + 1] !== DOT) return 0;
  if (p + 2 >= n) return more;
  if (buf[p + 2] === LF) return p + 3;
  if (buf[p + 2] !== CR) return 0;
  if (p + 3 >= n) return more;
  return buf[p + 3] === LF ? p + 4 : 0;
}

/** PostgreSQL's parse_bool: prefixes of true/false/yes/no, on/off, 1/0. */
function parseBool(value: string): boolean | undefined {
  const v = value.trim();
  if (!v) return undefined;
  if ('true'.startsWith(v) || 'yes'.startsWith(v) || v === '1' || v === 'on') return true;
  if ('false'.startsWith(v) || 'no'.startsWith(v) || v === '0' || (v.length >= 2 && 'off'.startsWith(v))) return false;
  return undefined;
}
