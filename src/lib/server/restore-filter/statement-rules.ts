/**
 * What the restore does with each top-level statement of a dump, judged from its
 * leading tokens (psql-lexer). Pure: no I/O, no state.
 *
 * Security does not depend on these rules (psql's \restrict and an unprivileged role
 * do that). They leave out what the restoring role may not or must not do: touch
 * databases, roles, tablespaces and extensions, hand objects to other owners, grant
 * to roles this server lacks, or recreate schemas the app prepared.
 */
import type { Token } from './psql-lexer';

export type SkipCategory = 'database' | 'extension' | 'owner' | 'role' | 'grant' | 'schema';

export interface RuleContext {
  existingRoles: ReadonlySet<string>;
  allowedExtensions: ReadonlySet<string>;
  preparedSchemas: ReadonlySet<string>;
}

export interface DumpExtension {
  name: string;
  schema: string | null;
}

export type Verdict =
  | { action: 'keep' }
  /** More tokens are needed; `untilEnd`: nothing before the statement's end will decide. */
  | { action: 'undecided'; untilEnd: boolean }
  | { action: 'skip'; category: SkipCategory; extension?: DumpExtension; missingRoles?: string[] }
  | { action: 'rewrite'; replacement: Buffer };

export interface StatementInfo {
  /** All tokens are known (the statement ended). */
  complete: boolean;
  /** There were more top-level tokens than the lexer keeps. */
  truncated?: boolean;
  /** The statement's exact bytes, when they were kept aside. */
  text?: Buffer;
}

export class ExtensionNotAllowedError extends Error {
  constructor(
    readonly extension: string,
    allowed: ReadonlySet<string>,
  ) {
    const list = [...allowed].sort().join(', ') || 'none';
    super(`The dump needs the PostgreSQL extension "${extension}", which Lifeboat does not allow in a restore (allowed: ${list}).`);
    this.name = 'ExtensionNotAllowedError';
  }
}

const SEARCH_PATH_ORIGINAL = Buffer.from("SELECT pg_catalog.set_config('search_path', '', false);");
/** The reference CLI recipe: old dumps still name objects unqualified. */
const SEARCH_PATH_REWRITTEN = Buffer.from("SELECT pg_catalog.set_config('search_path', 'public, pg_catalog', true);");
/** Words before `owner TO x` that make it a rename (RENAME COLUMN owner TO x), not an owner change. */
const NOT_OWNER = new Set(['rename', 'column', 'constraint', 'attribute', 'on']);
const PSEUDO_ROLES = new Set(['current_user', 'current_role', 'session_user']);
const GRANTEE_END = new Set(['with', 'granted', 'cascade', 'restrict']);
const NAMEDATALEN = 64;

/** First words of the statements any rule here (or the cluster sections) looks at; all others are kept. */
export const STATEMENT_VERBS: ReadonlySet<string> = new Set([
  'select', 'create', 'alter', 'drop', 'comment', 'security', 'grant', 'revoke', 'update', 'set', 'reset',
]);

const KEEP: Verdict = { action: 'keep' };
const WAIT: Verdict = { action: 'undecided', untilEnd: false };
const WAIT_END: Verdict = { action: 'undecided', untilEnd: true };
const skip = (category: SkipCategory): Verdict => ({ action: 'skip', category });

const word = (t: readonly Token[], i: number) => (t[i]?.kind === 'word' ? t[i].text : undefined);
const name = (t: readonly Token[], i: number) => (t[i]?.kind === 'word' || t[i]?.kind === 'ident' ? t[i].text : undefined);
const op = (t: readonly Token[], i: number) => (t[i]?.kind === 'op' ? t[i].text : undefined);

/** Fewer than k tokens are known yet. */
const short = (tokens: readonly Token[], info: StatementInfo, k: number) => !info.complete && tokens.length < k;
const indexOfWord = (tokens: readonly Token[], text: string, from = 0) => {
  for (let i = from; i < tokens.length; i++) if (tokens[i].kind === 'word' && tokens[i].text === text) return i;
  return -1;
};

export function judgeStatement(tokens: readonly Token[], context: RuleContext, info: StatementInfo): Verdict {
  const { complete } = info;
  const verb = word(tokens, 0);
  if (verb === undefined) return short(tokens, info, 1) ? WAIT : KEEP;
  if (verb === 'select') {
    if (!complete) {
      if (short(tokens, info, 4)) return WAIT;
      const setConfig = word(tokens, 1) === 'pg_catalog' && op(tokens, 2) === '.' && word(tokens, 3) === 'set_config';
      return setConfig ? WAIT_END : KEEP;
    }
    return info.text?.equals(SEARCH_PATH_ORIGINAL) ? { action: 'rewrite', replacement: SEARCH_PATH_REWRITTEN } : KEEP;
  }
  if (verb === 'create' || verb === 'alter' || verb === 'drop') return definition(verb, tokens, context, info);
  if (verb === 'comment') {
    if (short(tokens, info, 3)) return WAIT;
    if (word(tokens, 1) !== 'on') return KEEP;
    const object = word(tokens, 2);
    return object === 'database' ? skip('database') : object === 'extension' ? skip('extension') : KEEP;
  }
  if (verb === 'security') {
    // SECURITY LABEL [FOR provider] ON DATABASE ...
    const on = word(tokens, 2) === 'for' ? 4 : 2;
    if (short(tokens, info, on + 2)) return WAIT;
    return word(tokens, 1) === 'label' && word(tokens, on) === 'on' && word(tokens, on + 1) === 'database' ? skip('database') : KEEP;
  }
  if (verb === 'update') {
    if (short(tokens, info, 4)) return WAIT;
    const qualified = name(tokens, 1) === 'pg_catalog' && op(tokens, 2) === '.';
    const table = qualified ? name(tokens, 3) : op(tokens, 2) === '.' ? undefined : name(tokens, 1);
    return table === 'pg_database' ? skip('database') : KEEP;
  }
  if (verb === 'grant' || verb === 'revoke') return privileges(verb, tokens, context, info);
  return KEEP;
}

function definition(
  verb: string,
  tokens: readonly Token[],
  context: RuleContext,
  info: StatementInfo,
): Verdict {
  if (short(tokens, info, 2)) return WAIT;
  const object = word(tokens, 1);
  if (object === 'database') return skip('database');
  if (object === 'role' || object === 'group' || object === 'tablespace') return skip('role');
  if (object === 'user') {
    // CREATE/ALTER/DROP USER MAPPING [IF [NOT] EXISTS] FOR ... is no role statement.
    if (short(tokens, info, 4)) return WAIT;
    const mapping = word(tokens, 2) === 'mapping' && (word(tokens, 3) === 'for' || word(tokens, 3) === 'if');
    return mapping ? KEEP : skip('role');
  }
  if (object === 'extension') {
    if (verb !== 'create' || !info.complete) return skip('extension');
    return createExtension(tokens, context);
  }
  if (verb === 'alter' && object === 'default') return skip('owner'); // ALTER DEFAULT PRIVILEGES
  if (object === 'schema' && verb === 'create') {
    // CREATE SCHEMA [IF NOT EXISTS] s | CREATE SCHEMA AUTHORIZATION r (named after r)
    let i = word(tokens, 2) === 'if' ? 5 : 2;
    if (word(tokens, i) === 'authorization') i++;
    if (short(tokens, info, i + 1)) return WAIT;
    const schema = name(tokens, i);
    return schema !== undefined && context.preparedSchemas.has(schema) ? skip('schema') : KEEP;
  }
  if (object === 'schema' && verb === 'drop') {
    if (!info.complete) return WAIT_END;
    const schemas = nameList(tokens, word(tokens, 2) === 'if' ? 4 : 2, new Set(['cascade', 'restrict']));
    const prepared = schemas.length > 0 && schemas.every((s) => s !== undefined && context.preparedSchemas.has(s));
    return prepared && !info.truncated ? skip('schema') : KEEP;
  }
  if (verb !== 'alter') return KEEP;
  // ALTER <object> <name> OWNER TO <role>: pg_dump always writes it as the whole statement's end.
  if (!info.complete) return WAIT_END;
  const n = tokens.length;
  const owner = n >= 5 && word(tokens, n - 3) === 'owner' && word(tokens, n - 2) === 'to' && name(tokens, n - 1) !== undefined;
  return owner && !info.truncated && !NOT_OWNER.has(word(tokens, n - 4) ?? '') ? skip('owner') : KEEP;
}

function createExtension(tokens: readonly Token[], context: RuleContext): Verdict {
  // CREATE EXTENSION [IF NOT EXISTS] name [WITH] [SCHEMA s] [VERSION v] [CASCADE]
  let i = word(tokens, 2) === 'if' ? 5 : 2;
  const extension = name(tokens, i++) ?? '';
  let schema: string | null = null;
  for (; i < tokens.length; i++) if (word(tokens, i) === 'schema') schema = name(tokens, i + 1) ?? null;
  if (!context.allowedExtensions.has(extension)) throw new ExtensionNotAllowedError(extension, context.allowedExtensions);
  return { action: 'skip', category: 'extension', extension: { name: extension, schema } };
}

/** GRANT/REVOKE: role membership, privileges on a database, or privileges for grantees. */
function privileges(verb: string, tokens: readonly Token[], context: RuleContext, info: StatementInfo): Verdict {
  const on = indexOfWord(tokens, 'on');
  if (on >= 0 && on + 1 < tokens.length) {
    if (word(tokens, on + 1) === 'database') return skip('database');
  }
  if (!info.complete) return WAIT;
  if (on < 0) return info.truncated ? KEEP : skip('role'); // GRANT role TO role, REVOKE role FROM role
  if (info.truncated) return KEEP;
  const separator = verb === 'grant' ? 'to' : 'from';
  const at = indexOfWord(tokens, separator, on + 1);
  if (at < 0) return KEEP;
  const missing = new Set<string>();
  for (let i = at + 1; i < tokens.length; i++) {
    const w = word(tokens, i);
    if (w !== undefined && GRANTEE_END.has(w)) break;
    if (w === 'group' && name(tokens, i + 1) !== undefined) continue; // GROUP x means x
    const grantee = name(tokens, i);
    if (grantee === undefined) continue; // commas
    const pseudo = grantee === 'public' || (w !== undefined && PSEUDO_ROLES.has(w));
    if (!pseudo && !context.existingRoles.has(grantee)) missing.add(grantee);
  }
  return missing.size > 0 ? { action: 'skip', category: 'grant', missingRoles: [...missing] } : KEEP;
}

/** Comma-separated names from index i up to one of the stop words (undefined: not a plain name). */
function nameList(tokens: readonly Token[], i: number, stop: ReadonlySet<string>): Array<string | undefined> {
  const names: Array<string | undefined> = [];
  let item: Token[] = [];
  for (; i <= tokens.length; i++) {
    const w = word(tokens, i);
    if (i === tokens.length || (w !== undefined && stop.has(w)) || op(tokens, i) === ',') {
      names.push(item.length === 1 ? name(item, 0) : undefined);
      if (op(tokens, i) !== ',') break;
      item = [];
    } else item.push(tokens[i]);
  }
  return names;
}

/**
 * Statements that pg_dump writes before the first object of a database (settings,
 * the --clean drop phase, schemas, extensions, roles, databases): a dump head scan
 * reads on past them and stops at anything else.
 */
export function isPreambleStatement(tokens: readonly Token[]): boolean {
  const verb = word(tokens, 0);
  const object = word(tokens, 1);
  if (verb === 'set' || verb === 'reset' || verb === 'drop') return true;
  if (verb === 'select') return name(tokens, 1) === 'pg_catalog' && word(tokens, 3) === 'set_config';
  if (verb === 'comment') return word(tokens, 1) === 'on' && ['schema', 'extension', 'database'].includes(word(tokens, 2) ?? '');
  if (verb === 'create' || verb === 'alter') {
    if (['schema', 'database', 'role', 'user', 'group', 'tablespace'].includes(object ?? '')) return true;
    if (verb === 'create' && object === 'extension') return true;
    // --clean: ALTER TABLE ... DROP CONSTRAINT / ALTER COLUMN ... DROP DEFAULT
    if (verb === 'alter') return indexOfWord(tokens, 'drop', 2) >= 0;
    return false;
  }
  if (verb === 'grant' || verb === 'revoke') {
    const on = indexOfWord(tokens, 'on');
    return on < 0 || word(tokens, on + 1) === 'database';
  }
  return false;
}

/**
 * Names as the server sees them: U&"..." identifiers decoded (with their UESCAPE
 * clause, which is then dropped from the list) and every name cut to NAMEDATALEN - 1 bytes.
 */
export function cookTokens(tokens: readonly Token[]): readonly Token[] {
  let out: Token[] | undefined; // a copy only when something changes
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    let cooked = t;
    let skipped = 0;
    if (t.kind === 'ident' && t.unicode) {
      let escape = '\\';
      const clause = word(tokens, i + 1) === 'uescape' ? tokens[i + 2] : undefined;
      if (clause?.kind === 'string') {
        escape = clause.text;
        skipped = 2;
      }
      cooked = { kind: 'ident', text: truncateName(decodeUnicodeEscapes(t.text, escape)), unicode: false };
    } else if ((t.kind === 'word' || t.kind === 'ident') && t.text.length >= NAMEDATALEN / 4) {
      const text = truncateName(t.text);
      if (text !== t.text) cooked = { ...t, text };
    }
    if ((cooked !== t || skipped) && !out) out = tokens.slice(0, i);
    out?.push(cooked);
    i += skipped;
  }
  return out ?? tokens;
}

/** \XXXX and \+XXXXXX escapes; the escape character doubled stands for itself. */
export function decodeUnicodeEscapes(text: string, escape = '\\'): string {
  if (escape.length !== 1) return text;
  let out = '';
  for (let i = 0; i < text.length; ) {
    if (text[i] !== escape) {
      out += text[i++];
    } else if (text[i + 1] === escape) {
      out += escape;
      i += 2;
    } else {
      const long = text[i + 1] === '+';
      const hex = long ? text.slice(i + 2, i + 8) : text.slice(i + 1, i + 5);
      if (!/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== (long ? 6 : 4)) {
        out += text[i++]; // the server refuses it; keep the text as it is
        continue;
      }
      // A UTF-16 surrogate pair written as two escapes joins up in the JS string.
      const code = parseInt(hex, 16);
      out += code <= 0xffff ? String.fromCharCode(code) : String.fromCodePoint(Math.min(code, 0x10ffff));
      i += long ? 8 : 5;
    }
  }
  return out;
}

function truncateName(text: string): string {
  if (Buffer.byteLength(text) < NAMEDATALEN) return text;
  let out = '';
  for (const ch of text) {
    if (Buffer.byteLength(out + ch) >= NAMEDATALEN) break;
    out += ch;
  }
  return out;
}
