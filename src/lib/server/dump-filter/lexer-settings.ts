import type { PsqlLexer } from './psql-lexer';
import { tokenize, type Token } from './statement-rules';

/** Settings that change how psql reads what follows (SET NAMES is client_encoding). */
const FOLLOWED = new Set(['client_encoding', 'names', 'standard_conforming_strings']);

/** A statement changes how psql reads what follows in a form the lexer cannot follow: not pg_dump's. */
export class UnfollowedSettingError extends Error {
  constructor(statement: string) {
    super(
      `The dump changes a setting in a form Lifeboat does not follow (psql reads what comes next by client_encoding and standard_conforming_strings), which pg_dump never writes: ${statement.slice(0, 120).replace(/\s+/g, ' ')}`,
    );
    this.name = 'UnfollowedSettingError';
  }
}

/** First words of statements that may run set_config at top level: captured, so that its arguments can be read. */
export const SET_CONFIG_WORDS: ReadonlySet<string> = new Set(['select', 'values', 'with', 'call', 'explain', 'execute', 'prepare', 'table']);

/**
 * A SET, SET SESSION/LOCAL, SET NAMES or RESET [ALL] of client_encoding / standard_conforming_strings
 * changes how psql reads what follows (psql takes the value the server reports after each
 * statement): the lexer follows it. `strict` (the restore filter) refuses, as the lexer could then
 * misjudge every statement boundary after it: a SET of them it cannot read (a list as the value, an
 * unknown boolean), ROLLBACK TO a savepoint (it undoes SETs), an UPDATE of pg_settings, a U&"..."
 * name whose UESCAPE tokenize cannot read, and a call of set_config (by any spelling), in any statement, of one
 * of them or of a name that is not one plain literal. pg_dump writes none of these. The lexer
 * marks statements that name set_config and captures none of them unseen (LexerSink.uncaptured).
 * A function, a view, a default or a DO block can still change them where no text shows it: a
 * staged load is then dropped on failure, an in-place one rolled back to its restore point.
 */
export function followSetting(lexer: PsqlLexer, text: Buffer, strict = false): void {
  const sql = text.toString('latin1');
  const refuse = () => {
    if (strict) throw new UnfollowedSettingError(sql);
  };
  const tokens = tokenize(sql);
  // Past tokenize's limit: only a statement that could be one of those below is refused.
  if (!tokens) return /set_config|client_encoding|standard_conforming_strings|names|rollback|u&/i.test(sql) ? refuse() : undefined;
  const word = (i: number) => (tokens[i]?.kind === 'word' || tokens[i]?.kind === 'ident' ? tokens[i].text.toLowerCase() : undefined);
  if (tokens.some((token, i) => (token.unicode && unreadEscape(tokens, i)) || (isSetConfig(token) && tokens[i + 1]?.text === '(' && !harmlessSetConfig(tokens, i)))) return refuse();
  const verb = word(0);
  if (verb === 'reset') {
    const name = word(1);
    if (name === 'all' || name === 'client_encoding') lexer.setClientEncoding('');
    if (name === 'all' || name === 'standard_conforming_strings') lexer.setStandardStrings(true);
    return;
  }
  if (verb === 'rollback') {
    if (word(1) === 'to') refuse();
    return;
  }
  if (verb === 'update') {
    const table = word(1) === 'only' ? 2 : 1;
    if ((word(table) === 'pg_catalog' && tokens[table + 1]?.text === '.' ? word(table + 2) : word(table)) === 'pg_settings') refuse();
    return;
  }
  if (verb !== 'set') return;
  let at = word(1) === 'session' || word(1) === 'local' ? 2 : 1;
  const name = word(at);
  if (!name || !FOLLOWED.has(name)) return;
  at++;
  if (name !== 'names') {
    if (!(tokens[at]?.text === '=' || word(at) === 'to')) return refuse();
    at++;
  }
  const value = tokens[at];
  const rest = tokens.slice(at + 1);
  if (!value || !(rest.length === 0 || (rest.length === 1 && rest[0].text === ';'))) return refuse();
  let setting: string | undefined;
  if (value.kind === 'string') setting = value.value;
  else if (value.kind === 'word' || value.kind === 'ident') setting = value.text;
  else if (value.kind === 'other' && /^[01]$/.test(value.text)) setting = value.text;
  if (setting === undefined) return refuse();
  setting = setting.toLowerCase();
  if (name === 'standard_conforming_strings') {
    const on = setting === 'default' ? true : parseBool(setting);
    if (on === null) return refuse();
    lexer.setStandardStrings(on);
  } else lexer.setClientEncoding(setting === 'default' ? '' : setting);
}

/** PostgreSQL's parse_bool: on/off, true/false, yes/no (unique prefixes), 1/0; null for anything else. */
function parseBool(value: string): boolean | null {
  if (value === '1' || value === 'on') return true;
  if (value === '0' || value === 'of' || value === 'off') return false;
  if (value && ('true'.startsWith(value) || 'yes'.startsWith(value))) return true;
  if (value && ('false'.startsWith(value) || 'no'.startsWith(value))) return false;
  return null;
}

/** The database a pg_dumpall `DROP DATABASE [IF EXISTS] x` names, or null. */
export function droppedDatabase(text: Buffer): string | null {
  const tokens = tokenize(text.toString('utf8')) ?? [];
  if (tokens[1]?.text !== 'database') return null;
  const name = tokens[tokens[2]?.text === 'if' && tokens[3]?.text === 'exists' ? 4 : 2];
  return name && (name.kind === 'word' || name.kind === 'ident') ? name.text : null;
}

/** set_config, as a word or a quoted name ("SET_CONFIG" is another function). */
const isSetConfig = (token: Token) => (token.kind === 'word' || token.kind === 'ident') && token.text === 'set_config';

/**
 * set_config('<a plain name>', ...) of another setting leaves psql's reading as it was; one of the
 * two, or a name that is not one plain literal (built, escaped, a parameter), could change it.
 */
function harmlessSetConfig(tokens: Token[], at: number): boolean {
  const name = tokens[at + 2];
  return name?.value !== undefined && tokens[at + 3]?.text === ',' && !FOLLOWED.has(name.value.trim().toLowerCase());
}

/**
 * A U&"..." name with a UESCAPE tokenize did not take (after a comment, or as E'...'): the server
 * reads its escapes with another character, so the name tokenize decoded (set_config or not) may not be it.
 */
function unreadEscape(tokens: Token[], at: number): boolean {
  const next = tokens[at + 1];
  return next?.kind === 'word' && next.text === 'uescape';
}
