/**
 * pg_dumpall output ("cluster dump", known by its header comment before any statement):
 * the globals (roles, tablespaces), then one section per database, each opened by a
 * `-- Database "x" dump` comment (PostgreSQL 11+) and `\connect x`. Only the chosen
 * database's section is restored, from its `\connect` line on; the rest is still read
 * (the lexer must follow it) but dropped.
 *
 * The chosen database is `databaseName`. If the dump has no such database but its list
 * of databases in the globals (DROP DATABASE with --clean, CREATE DATABASE before
 * PostgreSQL 11) names exactly one other than template0/template1/postgres, that one is
 * restored instead: old instances used other names.
 */
import type { Token } from './psql-lexer';

const SYSTEM_DATABASES = new Set(['template0', 'template1', 'postgres']);
/** Bounds what a hostile dump can make us remember; error messages name at most this many. */
const MAX_NAMES = 100;

export class ClusterSections {
  private cluster = false;
  private section: string | null = null; // null: the globals
  private chosen: string | undefined;
  private connected = false; // inside the chosen section, after its \connect
  private found = false;
  private readonly listed = new Set<string>();
  private readonly sections: string[] = [];

  constructor(
    private readonly databaseName: string,
    private readonly onNotice?: (message: string) => void,
  ) {}

  get isCluster(): boolean {
    return this.cluster;
  }

  /** The database whose section is restored (cluster dumps only, once known). */
  get database(): string | null {
    return this.cluster ? (this.chosen ?? null) : null;
  }

  /** Whether what is being read now belongs to the restored database. */
  get keep(): boolean {
    return !this.cluster || this.connected;
  }

  /** A `--` comment starting a line outside statements. */
  comment(text: string, beforeContent: boolean): void {
    if (beforeContent && /^-- PostgreSQL database cluster dump\s*$/.test(text)) this.cluster = true;
    if (!this.cluster) return;
    const section = /^-- Database "(.*)" dump\s*$/.exec(text);
    if (section) this.enter(section[1], false);
  }

  /** A statement (cooked tokens): the globals' DROP/CREATE DATABASE list names the dump's databases. */
  statement(tokens: readonly Token[]): void {
    if (!this.cluster || this.section !== null || this.listed.size >= MAX_NAMES) return;
    const word = (i: number) => (tokens[i]?.kind === 'word' ? tokens[i].text : undefined);
    if ((word(0) !== 'drop' && word(0) !== 'create') || word(1) !== 'database') return;
    const at = word(2) === 'if' && word(3) === 'exists' ? 4 : 2;
    const t = tokens[at];
    if (t?.kind === 'word' || t?.kind === 'ident') this.listed.add(t.text);
  }

  /** A `\connect` or `\c` line, as the lexer read it (from the backslash). */
  connect(line: string): void {
    if (!this.cluster) return;
    const target = connectTarget(line.replace(/^\\[^\s\\]*/, ''));
    if (target !== undefined) this.enter(target, true);
  }

  /** At the end of the dump: a cluster dump must have had the chosen section. */
  finish(): void {
    if (!this.cluster || this.found) return;
    const found = this.sections.filter((name) => !SYSTEM_DATABASES.has(name));
    throw new Error(
      `The cluster dump has no section for the database "${this.chosen ?? this.databaseName}"` +
        (found.length ? ` (it contains ${quoted(found)}).` : ' (it contains no databases).'),
    );
  }

  private enter(database: string, connected: boolean): void {
    if (this.chosen === undefined) this.chosen = this.choose();
    this.section = database;
    if (!this.sections.includes(database) && this.sections.length < MAX_NAMES) this.sections.push(database);
    this.connected = connected && database === this.chosen;
    if (this.connected) this.found = true;
  }

  private choose(): string {
    const wanted = this.databaseName;
    const others = [...this.listed].filter((name) => !SYSTEM_DATABASES.has(name));
    if (this.listed.has(wanted) || SYSTEM_DATABASES.has(wanted) || others.length === 0) return wanted;
    if (others.length === 1) {
      this.onNotice?.(`The cluster dump has no database "${wanted}"; restoring its only database "${others[0]}" into "${wanted}".`);
      return others[0];
    }
    throw new Error(
      `The cluster dump has no database "${wanted}" and several others (${quoted(others)}); cannot tell which one to restore.`,
    );
  }
}

const quoted = (names: string[]) => names.map((n) => `"${n}"`).join(', ');

/**
 * The database a `\connect` line names: `\connect immich`,
 * `\connect -reuse-previous=on "dbname='immich'"`, or a URI.
 */
export function connectTarget(args: string): string | undefined {
  const spec = psqlArguments(args).find((w) => !w.startsWith('-'));
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
