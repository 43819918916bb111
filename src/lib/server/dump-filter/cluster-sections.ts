/**
 * pg_dumpall ("cluster") dumps: the globals (roles, tablespaces), then one section per database,
 * each from its `-- Database "x" dump` header, entered with `\connect x`. Only the instance
 * database's section is restored; the rest is read and left out. A dump without a section of
 * that name but with exactly one other non-system database in its DROP DATABASE list (made with
 * --clean) restores that one: old instances used other names.
 */
const SYSTEM_DATABASES = new Set(['template0', 'template1', 'postgres']);

export class ClusterSections {
  /** Set once the header comment was seen before any statement. */
  cluster = false;
  private sawContent = false;
  private section: string | null = null;
  private chosen: string | undefined;
  private chosenConnected = false;
  private inChosen = false;
  private readonly listed = new Set<string>();
  private readonly sections: string[] = [];

  constructor(
    private readonly databaseName: string,
    private readonly onNotice?: (message: string) => void,
  ) {}

  /** Whether what is read now reaches psql: all of a plain dump; of a cluster dump, the chosen section from its \connect on. */
  get keep(): boolean {
    return !this.cluster || this.inChosen;
  }

  statementSeen(): void {
    this.sawContent = true;
  }

  commentLine(text: string): void {
    if (!this.sawContent && /^-- PostgreSQL database cluster dump\s*$/.test(text)) this.cluster = true;
    if (!this.cluster) return;
    const section = /^-- Database "(.*)" dump\s*$/.exec(text);
    if (section) this.enter(section[1], false);
  }

  /** `DROP DATABASE [IF EXISTS] x` in the globals: the list the fallback choice is made from. */
  databaseListed(name: string): void {
    if (this.cluster && this.section === null) this.listed.add(name);
  }

  connect(database: string | undefined): void {
    this.sawContent = true;
    if (this.cluster && database !== undefined) this.enter(database, true);
  }

  /** At the end of the dump: a cluster dump must have had the chosen database's section. */
  finish(): void {
    if (!this.cluster || this.chosenConnected) return;
    const found = this.sections.filter((name) => !SYSTEM_DATABASES.has(name));
    throw new Error(
      `The cluster dump has no section for the database "${this.chosen ?? this.databaseName}"` +
        (found.length ? ` (it contains ${found.map((n) => `"${n}"`).join(', ')}).` : ' (it contains no databases).'),
    );
  }

  private enter(database: string, connected: boolean): void {
    if (this.chosen === undefined) this.chosen = this.choose();
    this.section = database;
    if (!this.sections.includes(database)) this.sections.push(database);
    this.inChosen = connected && database === this.chosen;
    if (this.inChosen) this.chosenConnected = true;
  }

  private choose(): string {
    const wanted = this.databaseName;
    const others = [...this.listed].filter((name) => !SYSTEM_DATABASES.has(name));
    if (this.listed.has(wanted) || SYSTEM_DATABASES.has(wanted) || others.length === 0) return wanted;
    if (others.length === 1) {
      this.onNotice?.(`The cluster dump has no database "${wanted}"; restoring its only database "${others[0]}" into "${wanted}".`);
      return others[0];
    }
    throw new Error(`The cluster dump has no database "${wanted}" and several others (${others.map((n) => `"${n}"`).join(', ')}); cannot tell which one to restore.`);
  }
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
