import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ClusterSections, connectTarget } from './cluster-sections';
import { PsqlLexer, type Token } from './psql-lexer';

/** The shared pg_dump fixtures (they have moved between folders). */
const fixture = (name: string) => {
  const places = ['./fixtures/', '../dump-filter/fixtures/', '../backup/fixtures/'].map((dir) => new URL(dir + name, import.meta.url));
  return readFileSync(places.find((url) => existsSync(url)) ?? places[0]);
};
const clusterDump = fixture('cluster-dump.sql');
const words = (sql: string): Token[] => sql.split(' ').map((w) => ({ kind: 'word', text: w.toLowerCase() }));

/** Drives ClusterSections with the lexer; returns the statements read while `keep` held. */
function keptStatements(dump: Buffer | string, databaseName: string, notices: string[] = []): string[] {
  const bytes = Buffer.from(dump);
  const sections = new ClusterSections(databaseName, (m) => notices.push(m));
  const kept: string[] = [];
  let start = 0;
  let sawContent = false;
  let metaAt = 0;
  const lexer = new PsqlLexer({
    statementStart: (at) => {
      start = at;
      sawContent = true;
    },
    statementEnd: (end, statement) => {
      if (sections.keep) kept.push(bytes.toString('utf8', start, end));
      sections.statement(statement.tokens);
    },
    metaStart: (at) => {
      metaAt = at;
      sawContent = true;
    },
    metaEnd: (end) => {
      const line = bytes.toString('utf8', metaAt, end);
      if (/^\\c(onnect)?\s/.test(line)) sections.connect(line);
    },
    lineComment: (_end, text) => sections.comment(text, !sawContent),
  });
  lexer.scan(bytes, true);
  sections.finish();
  return kept;
}

describe('ClusterSections', () => {
  it('keeps everything of a dump without the cluster header', () => {
    const sections = new ClusterSections('immich');
    sections.comment('-- PostgreSQL database dump', true);
    sections.comment('-- PostgreSQL database cluster dump', false); // not before any statement
    sections.comment('-- Database "other" dump', false);
    expect(sections.isCluster).toBe(false);
    expect(sections.keep).toBe(true);
    expect(() => sections.finish()).not.toThrow();
  });

  it('keeps only the chosen section of the fixture, from its \\connect on', () => {
    const kept = keptStatements(clusterDump, 'immich');
    expect(kept).toContain('CREATE TABLE public.assets (\n    id integer NOT NULL,\n    name text,\n    note text,\n    data jsonb\n);');
    expect(kept).toContain('COPY public.assets (id, name, note, data) FROM stdin;');
    expect(kept.join('\n')).not.toMatch(/CREATE ROLE|DROP DATABASE|CREATE DATABASE|public\.o /);
    expect(kept[0]).toBe('SET statement_timeout = 0;');
    expect(kept.filter((s) => s.startsWith('ALTER DATABASE immich'))).toEqual(["ALTER DATABASE immich SET search_path TO '$user', 'public';"]);
  });

  it('picks the only other database of the DROP DATABASE list, with a notice', () => {
    const dump = clusterDump.toString().replaceAll('immich', 'old_immich').replace('DROP DATABASE IF EXISTS other;\n', '\n');
    const notices: string[] = [];
    const kept = keptStatements(dump, 'immich', notices);
    expect(kept).toContain('COPY public.assets (id, name, note, data) FROM stdin;');
    expect(notices).toEqual(['The cluster dump has no database "immich"; restoring its only database "old_immich" into "immich".']);
  });

  it('refuses to guess between several other databases', () => {
    expect(() => keptStatements(clusterDump, 'photos')).toThrow(
      'The cluster dump has no database "photos" and several others ("immich", "other"); cannot tell which one to restore.',
    );
  });

  it('fails at the end when the database has no section, naming what the dump has', () => {
    const sections = new ClusterSections('immich');
    sections.comment('-- PostgreSQL database cluster dump', true);
    sections.comment('-- Database "template1" dump', false);
    sections.connect('\\connect template1');
    sections.comment('-- Database "old" dump', false);
    sections.connect('\\connect old');
    expect(sections.keep).toBe(false);
    expect(() => sections.finish()).toThrow('The cluster dump has no section for the database "immich" (it contains "old").');
    const empty = new ClusterSections('immich');
    empty.comment('-- PostgreSQL database cluster dump', true);
    expect(() => empty.finish()).toThrow('(it contains no databases).');
  });

  it('reads old dumps: CREATE DATABASE in the globals and sections opened by \\connect alone', () => {
    const sections = new ClusterSections('immich');
    sections.comment('-- PostgreSQL database cluster dump', true);
    sections.statement(words('CREATE DATABASE photos'));
    expect(sections.keep).toBe(false);
    sections.connect('\\connect photos');
    expect(sections.database).toBe('photos');
    expect(sections.keep).toBe(true);
    sections.connect('\\c postgres');
    expect(sections.keep).toBe(false);
    expect(() => sections.finish()).not.toThrow();
  });
});

describe('connectTarget', () => {
  it.each([
    ['immich', 'immich'],
    ['-reuse-previous=on "dbname=\'im mich\'"', 'im mich'],
    ["\"dbname='it\\'s'\"", "it's"],
    ['"My DB"', 'My DB'],
    ['postgresql://u@h:5432/my%20db', 'my db'],
    ['-reuse-previous=on', undefined],
  ])('%s → %s', (args, expected) => {
    expect(connectTarget(args)).toBe(expected);
  });
});
