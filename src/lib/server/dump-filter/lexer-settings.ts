import type { PsqlLexer } from './psql-lexer';
import { tokenize } from './statement-rules';

/** A SET of client_encoding / standard_conforming_strings changes how psql reads what follows: the lexer follows it. */
export function followSetting(lexer: PsqlLexer, text: Buffer): void {
  const tokens = tokenize(text.toString('latin1')) ?? [];
  const value = /'([^']*)'|(\w+)\s*;?\s*$/.exec(text.toString('latin1'));
  const setting = (value?.[1] ?? value?.[2] ?? '').toLowerCase();
  if (tokens[1]?.text === 'client_encoding') lexer.setClientEncoding(setting);
  if (tokens[1]?.text === 'standard_conforming_strings') lexer.setStandardStrings(setting !== 'off' && setting !== 'false');
}

/** The database a pg_dumpall `DROP DATABASE [IF EXISTS] x` names, or null. */
export function droppedDatabase(text: Buffer): string | null {
  const tokens = tokenize(text.toString('utf8')) ?? [];
  if (tokens[1]?.text !== 'database') return null;
  const name = tokens[tokens[2]?.text === 'if' && tokens[3]?.text === 'exists' ? 4 : 2];
  return name && (name.kind === 'word' || name.kind === 'ident') ? name.text : null;
}
