import type { Readable } from 'node:stream';
import { PsqlLexer, type LexerSink, type StatementInfo } from '../dump-filter/psql-lexer';
import { nameParts, tokenize, type Token } from '../dump-filter/statement-rules';
import { SessionSettings } from './dump-splitter';

/**
 * A piece of what follows the COPY blocks, as a byte range of the spooled text:
 * - `serial`: runs alone, after everything before it and before everything after it;
 * - `key`: CREATE INDEX, or ADD CONSTRAINT of a primary key, unique, check or exclusion
 *   constraint: runs beside others that touch other tables;
 * - `foreign-key`: ADD CONSTRAINT ... FOREIGN KEY: also waits for every index and key before it.
 */
export interface PostDataUnit {
  kind: 'serial' | 'key' | 'foreign-key';
  start: number;
  end: number;
  /** Tables it locks (normalised names), for `key` and `foreign-key`. */
  tables: string[];
  /** CREATE INDEX: its SHARE lock lets other index builds on the same table run beside it. */
  shared: boolean;
  /** Session settings in force at its start, replayed first on its connection. */
  settings: string[];
}

/** Beyond this many statements to run apart the rest simply runs in order (bounded memory). */
const MAX_PARALLEL_UNITS = 50_000;

class Planner implements LexerSink {
  readonly lexer = new PsqlLexer(this);
  readonly units: PostDataUnit[] = [];
  readonly settings = new SessionSettings();
  offset = 0;
  private run: PostDataUnit | null = null;
  private runHasStatement = false;
  private parallel = 0;

  text(bytes: Buffer): void {
    this.serial(bytes.length, !isBlank(bytes));
  }

  wants(firstWord: string): boolean {
    return firstWord === 'create' || firstWord === 'alter' || firstWord === 'set' || firstWord === 'select';
  }

  statement(text: Buffer, info: StatementInfo): void {
    const unit = info.firstWord === 'create' || info.firstWord === 'alter' ? classify(text) : null;
    if (!unit || this.parallel >= MAX_PARALLEL_UNITS) {
      if (info.firstWord === 'set' || info.firstWord === 'select') this.settings.note(text);
      return this.serial(text.length, true);
    }
    this.closeRun();
    this.parallel++;
    this.units.push({ ...unit, start: this.offset, end: this.offset + text.length, settings: this.settings.current() });
    this.offset += text.length;
  }

  metaLine(line: Buffer, eol: string): void {
    this.serial(line.length + Buffer.byteLength(eol), true);
  }

  finish(): PostDataUnit[] {
    this.closeRun();
    return this.units;
  }

  private serial(length: number, statement: boolean): void {
    this.run ??= { kind: 'serial', start: this.offset, end: this.offset, tables: [], shared: false, settings: this.settings.current() };
    this.offset += length;
    this.run.end = this.offset;
    this.runHasStatement ||= statement;
  }

  private closeRun(): void {
    // Whitespace and comments between two statements run apart need no connection of their own.
    if (this.run && this.runHasStatement) this.units.push(this.run);
    this.run = null;
    this.runHasStatement = false;
  }
}

/** Splits the rest of the dump into units; the whole text must have been seen (`size` bytes), else it is one serial unit. */
export async function planPostData(input: Readable, size: number): Promise<PostDataUnit[]> {
  const planner = new Planner();
  for await (const chunk of input) planner.lexer.write(chunk as Buffer);
  planner.lexer.end();
  const units = planner.finish();
  // Every byte is accounted for, or nothing is run apart.
  if (planner.offset !== size) return size ? [{ kind: 'serial', start: 0, end: size, tables: [], shared: false, settings: [] }] : [];
  return units;
}

/**
 * Neighbouring units of one kind on the same small table (its keys, or its foreign keys), with the
 * same settings, joined into one: each unit costs a psql start and a connection (a tenth of a
 * second of the two cores), more than building a key of a table of a few rows; an error still names
 * its table. Only blank text lies between neighbours (see Planner).
 */
export function joinSmallUnits(units: PostDataUnit[], isSmall: (table: string) => boolean): PostDataUnit[] {
  const joined: PostDataUnit[] = [];
  for (const unit of units) {
    const last = joined.at(-1);
    const small = unit.kind !== 'serial' && unit.tables.every(isSmall);
    if (
      small &&
      last &&
      last.kind === unit.kind &&
      last.tables[0] === unit.tables[0] &&
      last.end <= unit.start &&
      last.settings === unit.settings &&
      last.tables.every(isSmall)
    ) {
      joined[joined.length - 1] = { ...last, end: unit.end, tables: [...new Set([...last.tables, ...unit.tables])], shared: last.shared && unit.shared };
      continue;
    }
    joined.push(unit);
  }
  return joined;
}

/** A statement that may run beside others, with the tables it locks; null for any other. */
export function classify(statement: Buffer): Pick<PostDataUnit, 'kind' | 'tables' | 'shared'> | null {
  if (statement.length > 64 * 1024) return null;
  const tokens = tokenize(statement.toString('utf8'));
  if (!tokens) return null;
  const word = (i: number) => (tokens[i]?.kind === 'word' ? tokens[i].text : '');
  if (word(0) === 'create') {
    // CREATE [UNIQUE] INDEX name ON [ONLY] table: not CONCURRENTLY (it cannot run in a transaction block, and waits for others).
    let i = 1;
    if (word(i) === 'unique') i++;
    if (word(i) !== 'index') return null;
    const on = tokens.findIndex((token, at) => at > i && token.kind === 'word' && token.text === 'on');
    if (on === -1 || tokens.slice(i + 1, on).some((token) => token.kind === 'word' && token.text === 'concurrently')) return null;
    const table = qualifiedName(tokens, word(on + 1) === 'only' ? on + 2 : on + 1);
    return table ? { kind: 'key', tables: [table.name], shared: true } : null;
  }
  if (word(0) === 'alter' && word(1) === 'table') {
    let i = 2;
    if (word(i) === 'if' && word(i + 1) === 'exists') i += 2;
    if (word(i) === 'only') i++;
    const table = qualifiedName(tokens, i);
    if (!table) return null;
    let next = table.next;
    if (tokens[next]?.kind === 'other' && tokens[next].text === '*') next++;
    if (word(next) !== 'add' || word(next + 1) !== 'constraint') return null;
    const type = word(next + 3);
    const rest = tokens.slice(next + 3);
    if (type === 'primary' || type === 'unique' || type === 'check' || type === 'exclude') return onlyOneAction(rest) ? { kind: 'key', tables: [table.name], shared: false } : null;
    if (type === 'foreign') {
      const references = rest.findIndex((token) => token.kind === 'word' && token.text === 'references');
      const target = references === -1 ? null : qualifiedName(rest, references + 1);
      return target && onlyOneAction(rest) ? { kind: 'foreign-key', tables: [table.name, target.name], shared: false } : null;
    }
  }
  return null;
}

/** No comma outside parentheses: ALTER TABLE with several actions is left to run in order. */
function onlyOneAction(tokens: Token[]): boolean {
  let depth = 0;
  for (const token of tokens) {
    if (token.kind !== 'punct') continue;
    if (token.text === '(') depth++;
    else if (token.text === ')') depth--;
    else if (token.text === ',' && depth === 0) return false;
  }
  return true;
}

function qualifiedName(tokens: Token[], at: number): { name: string; next: number } | null {
  const found = nameParts(tokens, at);
  // Unqualified names could mean different tables under different search paths: pg_dump always qualifies.
  if (!found || found.parts.length < 2) return null;
  return { name: found.parts.map((part) => JSON.stringify(part)).join('.'), next: found.next };
}

function isBlank(bytes: Buffer): boolean {
  // Whitespace and whole `--` comment lines only (what pg_dump writes between statements).
  return /^(\s|--[^\n]*(\n|$))*$/.test(bytes.toString('latin1'));
}
