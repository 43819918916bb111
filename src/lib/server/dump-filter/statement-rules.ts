/**
 * What the restore does with one complete top-level statement of a dump: keep it byte for byte,
 * leave it out (the app does that part itself, or it names a role this server lacks), or rewrite it
 * (the reference recipe's search_path fix). Names are compared as the server reads them: unquoted
 * words folded to lower case, quoted identifiers as written, U&"..." decoded.
 */

export type SkipCategory = 'extension' | 'owner' | 'role' | 'database' | 'grant' | 'schema' | 'transaction';

export interface DumpExtensionRef {
  name: string;
  schema: string | null;
}

export type Decision =
  | { action: 'keep' }
  | { action: 'rewrite'; text: Buffer }
  | { action: 'skip'; category: SkipCategory; missingRoles?: string[]; extension?: DumpExtensionRef };

export interface RuleContext {
  existingRoles: ReadonlySet<string>;
  allowedExtensions: ReadonlySet<string>;
  preparedSchemas: ReadonlySet<string>;
}

export class DisallowedExtensionError extends Error {
  constructor(
    readonly extension: string,
    allowed: ReadonlySet<string>,
  ) {
    super(`The dump needs the PostgreSQL extension "${extension}", which Lifeboat does not allow in a restore (allowed: ${[...allowed].join(', ')}).`);
    this.name = 'DisallowedExtensionError';
  }
}

export interface Token {
  kind: 'word' | 'ident' | 'string' | 'punct' | 'other';
  /** word: lower-cased; ident: the name; punct: the character. */
  text: string;
  /** A plain '...' string without backslashes: its value (quotes undone). */
  value?: string;
  /** A U&"..." identifier (its escapes undone in text). */
  unicode?: boolean;
}

const SEARCH_PATH_ORIGINAL = "SELECT pg_catalog.set_config('search_path', '', false);";
// The reference recipe puts public first; pg_catalog first keeps what pg_dump meant (an unqualified
// gen_random_uuid() is the built-in one, not pgcrypto's) while old dumps still find public's objects.
const SEARCH_PATH_REWRITTEN = Buffer.from("SELECT pg_catalog.set_config('search_path', 'pg_catalog, public', true);");
const ROLE_WORDS = new Set(['role', 'user', 'group']);
const SELF = new Set(['public', 'current_user', 'current_role', 'session_user']);
const MAX_TOKENS = 4096;
/**
 * Statements that end or start a transaction. The restore is one transaction of the app's; pg_dump
 * writes BEGIN/COMMIT around large objects, which are redundant inside it, and anything else that
 * ends it early would let part of a dump commit on its own.
 */
const TRANSACTION_WORDS_LIST = ['begin', 'start', 'commit', 'end', 'rollback', 'abort', 'prepare'];

/** First words of the statements decide() may act on: the lexer captures only these. */
export const CANDIDATE_WORDS: ReadonlySet<string> = new Set(['create', 'alter', 'drop', 'comment', 'grant', 'revoke', 'update', 'select', 'security', 'set', ...TRANSACTION_WORDS_LIST]);

export function decide(text: Buffer, ctx: RuleContext): Decision {
  // A statement of more tokens than MAX_TOKENS is judged by its first ones: whatever they leave out
  // stays out; a GRANT, REVOKE or ALTER they would keep is refused, its grantees or OWNER TO being
  // further on (helper-21: filler such as `TO PUBLIC, PUBLIC, ...` or adjacent '' strings).
  const tokens = tokenize(text.toString('utf8'), { prefix: true }) ?? [];
  const decision = decideTokens(text, tokens, ctx);
  const verb = tokens[0]?.kind === 'word' ? tokens[0].text : undefined;
  if (tokens.length > MAX_TOKENS && decision.action === 'keep' && (verb === 'grant' || verb === 'revoke' || verb === 'alter')) throw new LongStatementError(verb);
  return decision;
}

/** A statement the rules must read to its end, longer than they read. */
export class LongStatementError extends Error {
  constructor(verb: string) {
    super(`The dump has a ${verb.toUpperCase()} statement of more than ${MAX_TOKENS} tokens, which Lifeboat does not read to its end and pg_dump never writes: it was not made by pg_dump, or was edited.`);
    this.name = 'LongStatementError';
  }
}

function decideTokens(text: Buffer, tokens: Token[], ctx: RuleContext): Decision {
  const word = (i: number) => (tokens[i]?.kind === 'word' ? tokens[i].text : undefined);
  const name = (i: number) => (tokens[i] && (tokens[i].kind === 'word' || tokens[i].kind === 'ident') ? tokens[i].text : undefined);
  const verb = word(0);
  const object = word(1);

  if (verb === 'select') {
    return text.toString('latin1').trim() === SEARCH_PATH_ORIGINAL ? { action: 'rewrite', text: SEARCH_PATH_REWRITTEN } : { action: 'keep' };
  }
  if (verb === 'update') {
    const table = word(1) === 'pg_catalog' && tokens[2]?.text === '.' ? word(3) : word(1);
    return table === 'pg_database' ? { action: 'skip', category: 'database' } : { action: 'keep' };
  }
  if (verb === 'comment' || verb === 'security') {
    // COMMENT ON DATABASE x / SECURITY LABEL [FOR p] ON DATABASE x; COMMENT ON EXTENSION x.
    const on = tokens.findIndex((token, i) => i < 6 && token.kind === 'word' && token.text === 'on');
    const target = on >= 0 ? word(on + 1) : undefined;
    if (target === 'database') return { action: 'skip', category: 'database' };
    if (target === 'extension') return { action: 'skip', category: 'extension' };
    return { action: 'keep' };
  }
  if (verb === 'grant' || verb === 'revoke') return decideGrant(tokens, ctx);
  if (verb === 'begin' || verb === 'start' || verb === 'commit' || verb === 'end' || verb === 'abort') return { action: 'skip', category: 'transaction' };
  // ROLLBACK TO [SAVEPOINT] stays inside the transaction; plain ROLLBACK, PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED do not.
  if (verb === 'rollback') return word(1) === 'to' ? { action: 'keep' } : { action: 'skip', category: 'transaction' };
  if (verb === 'prepare') return word(1) === 'transaction' ? { action: 'skip', category: 'transaction' } : { action: 'keep' };
  if (verb !== 'create' && verb !== 'alter' && verb !== 'drop') return { action: 'keep' };

  if (object === 'database' || object === 'tablespace') return { action: 'skip', category: object === 'database' ? 'database' : 'role' };
  if (object && ROLE_WORDS.has(object) && !(object === 'user' && word(2) === 'mapping')) return { action: 'skip', category: 'role' };
  // CREATE [OR REPLACE] [TRUSTED] [PROCEDURAL] LANGUAGE x is CREATE EXTENSION x since PostgreSQL 13.
  let language = 1;
  if (verb === 'create' && word(1) === 'or' && word(2) === 'replace') language = 3;
  if (verb === 'create' && word(language) === 'trusted') language++;
  if (verb === 'create' && word(language) === 'procedural') language++;
  if (verb === 'create' && word(language) === 'language') {
    const extension = name(language + 1);
    if (!extension) return { action: 'keep' };
    if (!ctx.allowedExtensions.has(extension)) throw new DisallowedExtensionError(extension, ctx.allowedExtensions);
    return { action: 'skip', category: 'extension', extension: { name: extension, schema: null } };
  }
  if (object === 'extension') {
    if (verb !== 'create') return { action: 'skip', category: 'extension' };
    let i = 2;
    if (word(i) === 'if' && word(i + 1) === 'not' && word(i + 2) === 'exists') i += 3;
    const extension = name(i);
    if (!extension) return { action: 'keep' };
    if (!ctx.allowedExtensions.has(extension)) throw new DisallowedExtensionError(extension, ctx.allowedExtensions);
    const schemaAt = tokens.findIndex((token, j) => j > i && token.kind === 'word' && token.text === 'schema');
    return { action: 'skip', category: 'extension', extension: { name: extension, schema: schemaAt > 0 ? (name(schemaAt + 1) ?? null) : null } };
  }
  if (object === 'schema' && verb !== 'alter') {
    let i = 2;
    if (verb === 'drop' && word(i) === 'if' && word(i + 1) === 'exists') i += 2;
    if (verb === 'create' && word(i) === 'if' && word(i + 1) === 'not' && word(i + 2) === 'exists') i += 3;
    const schema = name(i);
    if (schema && ctx.preparedSchemas.has(schema) && tokens.length <= i + 2) return { action: 'skip', category: 'schema' };
    return { action: 'keep' };
  }
  if (verb === 'alter') {
    if (object === 'default' && word(2) === 'privileges') return { action: 'skip', category: 'owner' };
    // ... OWNER TO <role>; at the end of the statement.
    const end = tokens.length - (tokens[tokens.length - 1]?.text === ';' ? 1 : 0);
    if (end >= 3 && tokens[end - 3].kind === 'word' && tokens[end - 3].text === 'owner' && word(end - 2) === 'to') return { action: 'skip', category: 'owner' };
  }
  return { action: 'keep' };
}

/**
 * GRANT/REVOKE. On objects (an ON clause): kept when every grantee exists here, else left out and
 * the missing roles listed. Without ON it grants a role's membership: left out.
 */
function decideGrant(tokens: Token[], ctx: RuleContext): Decision {
  const isWord = (i: number, text: string) => tokens[i]?.kind === 'word' && tokens[i].text === text;
  const on = tokens.findIndex((_, i) => isWord(i, 'on'));
  if (on < 0) return { action: 'skip', category: 'role' };
  if (isWord(on + 1, 'database')) return { action: 'skip', category: 'database' };
  const verb = tokens[0].text;
  const to = tokens.findIndex((_, i) => i > on && isWord(i, verb === 'grant' ? 'to' : 'from'));
  if (to < 0) return { action: 'keep' };
  const missing: string[] = [];
  for (let i = to + 1; i < tokens.length; i++) {
    const token = tokens[i];
    if (token.kind === 'punct' && token.text === ',') continue;
    if (token.kind === 'word' && token.text === 'group') continue;
    if (token.kind !== 'word' && token.kind !== 'ident') break;
    // WITH GRANT OPTION, GRANTED BY, CASCADE/RESTRICT end the list.
    if (token.kind === 'word' && ['with', 'granted', 'cascade', 'restrict'].includes(token.text)) break;
    if (token.kind === 'word' && SELF.has(token.text)) continue;
    if (!ctx.existingRoles.has(token.text)) missing.push(token.text);
  }
  return missing.length ? { action: 'skip', category: 'grant', missingRoles: missing } : { action: 'keep' };
}

/** How pg_dump ends a COPY of rows that follow in psql's input, byte for byte. */
const COPY_FROM_STDIN = Buffer.from(' FROM stdin;');
const FROZEN_COPY_END = Buffer.from(' FROM stdin WITH (FREEZE);');

/**
 * pg_dump's `COPY name (columns) FROM stdin;` with FREEZE added, or null for any other ending. Only
 * pg_dump's exact bytes: any other spelling (other white space or case, bytes that JavaScript, psql
 * and PostgreSQL may each read differently) runs as it is. The bytes before stay as they were, so
 * the statement is the dump's with an option more (which can only add an error, never mend one), on
 * as many lines.
 */
export function freezeCopy(statement: Buffer): Buffer | null {
  const at = statement.length - COPY_FROM_STDIN.length;
  if (at < 0 || !statement.subarray(at).equals(COPY_FROM_STDIN)) return null;
  return Buffer.concat([statement.subarray(0, at), FROZEN_COPY_END]);
}

/**
 * The table a `CREATE [UNLOGGED] TABLE schema.name` makes, as copyTable writes it, or null for
 * anything else: other statements, unqualified names (they could mean different tables under
 * different search paths; pg_dump always qualifies), temporary tables, and partitioned tables or
 * partitions (COPY FREEZE refuses a partitioned table, and pg_dump may load a partition through its root).
 */
export function createdTable(text: Buffer): string | null {
  if (!/^create\s+(unlogged\s+)?table\s/i.test(text.toString('latin1', 0, 64))) return null;
  const tokens = tokenize(text.toString('utf8'));
  if (!tokens || tokens.some((token) => token.kind === 'word' && token.text === 'partition')) return null;
  let at = tokens[1].text === 'unlogged' ? 3 : 2;
  if (tokens[at]?.text === 'if' && tokens[at + 1]?.text === 'not' && tokens[at + 2]?.text === 'exists') at += 3;
  const found = nameParts(tokens, at);
  // PostgreSQL cuts longer names to 63 bytes: those are not worth the memory of keeping them whole.
  return found?.parts.length === 2 && found.parts.every((part) => Buffer.byteLength(part) <= 63) ? quoteParts(found.parts) : null;
}

/** `COPY schema.table (...) FROM stdin`: the table as quoted identifiers, or null when it does not read as a plain name. */
export function copyTable(statement: Buffer): string | null {
  const tokens = tokenize(statement.subarray(0, 4096).toString('utf8'));
  if (!tokens || tokens[0]?.text !== 'copy') return null;
  const found = nameParts(tokens, 1);
  const next = found && tokens[found.next];
  if (!next || !((next.kind === 'punct' && next.text === '(') || (next.kind === 'word' && next.text === 'from'))) return null;
  return quoteParts(found.parts);
}

const quoteParts = (parts: string[]) => parts.map((part) => `"${part.replace(/"/g, '""')}"`).join('.');

/** A name of up to three parts at `at`, as the parts and where it ends. */
export function nameParts(tokens: Token[], at: number): { parts: string[]; next: number } | null {
  const parts: string[] = [];
  let i = at;
  for (;;) {
    const token = tokens[i];
    if (!token || (token.kind !== 'word' && token.kind !== 'ident')) return null;
    parts.push(token.text);
    if (tokens[i + 1]?.kind === 'punct' && tokens[i + 1].text === '.') {
      i += 2;
      continue;
    }
    break;
  }
  return parts.length > 3 ? null : { parts, next: i + 1 };
}

/** The statement's tokens (null past MAX_TOKENS: too long to be one the rules act on; with `prefix`, the first MAX_TOKENS). */
export function tokenize(sql: string, options: { prefix?: boolean } = {}): Token[] | null {
  const tokens: Token[] = [];
  const n = sql.length;
  let i = 0;
  while (i < n) {
    if (tokens.length > MAX_TOKENS) return options.prefix ? tokens : null;
    const c = sql[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      // As the server: a carriage return ends the comment too.
      const end = /[\r\n]/.exec(sql.slice(i, sql.indexOf('\n', i) + 1 || n));
      i = end ? i + end.index + 1 : n;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      let depth = 0;
      i += 2;
      while (i < n) {
        if (sql[i] === '/' && sql[i + 1] === '*') (depth++, (i += 2));
        else if (sql[i] === '*' && sql[i + 1] === '/') {
          i += 2;
          if (depth-- === 0) break;
        } else i++;
      }
      continue;
    }
    if ((c === 'U' || c === 'u') && sql[i + 1] === '&' && sql[i + 2] === '"') {
      const [raw, end] = quoted(sql, i + 2, '"');
      i = end;
      const escape = /^\s*uescape\s*'(.)'/i.exec(sql.slice(i, i + 32));
      if (escape) i += escape[0].length;
      tokens.push({ kind: 'ident', text: decodeUnicode(raw, escape?.[1] ?? '\\'), unicode: true });
      continue;
    }
    if (c === '"') {
      const [raw, end] = quoted(sql, i, '"');
      tokens.push({ kind: 'ident', text: raw });
      i = end;
      continue;
    }
    if (c === "'" || ((c === 'E' || c === 'e' || c === 'B' || c === 'b' || c === 'X' || c === 'x' || c === 'N' || c === 'n') && sql[i + 1] === "'")) {
      const start = c === "'" ? i : i + 1;
      const escapes = c === 'E' || c === 'e';
      let j = start + 1;
      while (j < n) {
        if (escapes && sql[j] === '\\') j += 2;
        else if (sql[j] === "'" && sql[j + 1] === "'") j += 2;
        else if (sql[j] === "'") break;
        else j++;
      }
      const body = sql.slice(start + 1, j);
      tokens.push(c === "'" && !body.includes('\\') ? { kind: 'string', text: '', value: body.replaceAll("''", "'") } : { kind: 'string', text: '' });
      i = j + 1;
      continue;
    }
    if (c === '$') {
      const tag = /^\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/.exec(sql.slice(i, i + 80));
      if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        tokens.push({ kind: 'string', text: '' });
        i = close === -1 ? n : close + tag[0].length;
        continue;
      }
    }
    const word = /^[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*/.exec(sql.slice(i, i + 128));
    if (word) {
      // The server folds ASCII letters only.
      tokens.push({ kind: 'word', text: word[0].replace(/[A-Z]+/g, (letters) => letters.toLowerCase()) });
      i += word[0].length;
      continue;
    }
    tokens.push({ kind: '(),;.'.includes(c) ? 'punct' : 'other', text: c });
    i++;
  }
  return tokens;
}

/** The body of a quote starting at `at` (doubled quotes undone) and where it ends. */
function quoted(sql: string, at: number, quote: string): [string, number] {
  let text = '';
  let i = at + 1;
  while (i < sql.length) {
    const next = sql.indexOf(quote, i);
    if (next === -1) return [text + sql.slice(i), sql.length];
    text += sql.slice(i, next);
    if (sql[next + 1] === quote) {
      text += quote;
      i = next + 2;
    } else return [text, next + 1];
  }
  return [text, i];
}

/** U&"..." escapes: \XXXX, \+XXXXXX and a doubled escape character. */
export function decodeUnicode(raw: string, escape: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== escape) {
      out += raw[i];
      continue;
    }
    if (raw[i + 1] === escape) {
      out += escape;
      i++;
    } else if (raw[i + 1] === '+' && /^[0-9A-Fa-f]{6}$/.test(raw.slice(i + 2, i + 8))) {
      out += String.fromCodePoint(Number.parseInt(raw.slice(i + 2, i + 8), 16));
      i += 7;
    } else if (/^[0-9A-Fa-f]{4}$/.test(raw.slice(i + 1, i + 5))) {
      out += String.fromCodePoint(Number.parseInt(raw.slice(i + 1, i + 5), 16));
      i += 4;
    } else out += raw[i];
  }
  return out;
}
