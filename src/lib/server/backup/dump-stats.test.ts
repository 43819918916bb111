import { describe, expect, it } from 'vitest';
import { copyBlockOf, copyField, DumpStats } from './dump-stats';

const END = '\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abcdef\n\n';

function statsOf(text: string, pieces = 1, options: ConstructorParameters<typeof DumpStats>[1] = {}) {
  const stats = new DumpStats('immich', options);
  const bytes = Buffer.from(text);
  const size = Math.ceil(bytes.length / pieces);
  for (let i = 0; i < bytes.length; i += size) stats.write(bytes.subarray(i, i + size));
  return stats.end();
}

const DUMP = [
  "SET client_encoding = 'UTF8';",
  'CREATE TABLE public.users (id int, email text);',
  "CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $$\nCOPY public.fake (a) FROM stdin;\n$$;",
  'COPY public.users (id, email) FROM stdin;',
  '1\ta@example.com',
  '2\tb@example.com',
  '\\.',
  '',
  'COPY "Odd Schema"."My Table" FROM stdin;',
  'x',
  '\\.',
  'COPY public.empty (a) FROM stdin;',
  '\\.',
].join('\n');

describe('DumpStats', () => {
  it('counts the rows of every COPY block, in any chunking, and not a "COPY" inside a function body', () => {
    for (const pieces of [1, 3, 17, 400]) {
      const result = statsOf(DUMP + END, pieces);
      expect(result.tables).toEqual({ 'public.users': 2, 'Odd Schema.My Table': 1, 'public.empty': 0 });
      expect(result.complete).toBe(true);
      expect(result.uncompressedSize).toBe(Buffer.byteLength(DUMP + END));
    }
  });

  it('is complete only when the end line is the last one (not the same words in a row near the end of a cut file)', () => {
    expect(statsOf(DUMP).complete).toBe(false);
    const cut = `${DUMP.replace('2\tb@example.com', '2\t-- PostgreSQL database dump complete')}`.split('\n').slice(0, 8).join('\n');
    expect(statsOf(cut).complete).toBe(false);
    expect(statsOf(`${DUMP}\n--\n-- PostgreSQL database dump complete\n--\n`).complete).toBe(true);
    expect(statsOf(`${DUMP}\n--\n-- PostgreSQL database cluster dump complete\n--\n\n`).complete).toBe(true);
    expect(statsOf(`${DUMP}${END}SELECT 1;\n`).complete).toBe(false);
    // Rows that read exactly like the end lines, in a file cut after them: data, not the end.
    const mimic = 'COPY public.notes (line) FROM stdin;\n-- PostgreSQL database dump complete\n--\n';
    expect(statsOf(mimic).complete).toBe(false);
    expect(statsOf(`${mimic}\\.\n${END}`).complete).toBe(true);
  });

  it('hands each row of a visited table to its visitor, split over chunks, without the end-of-data line', () => {
    const seen: string[] = [];
    for (const pieces of [1, 50]) {
      seen.length = 0;
      statsOf(DUMP + END, pieces, { rowVisitor: (block) => (block.table === 'public.users' ? (line) => seen.push(`${block.columns.join(',')}:${line.toString()}`) : null) });
      expect(seen).toEqual(['id,email:1\ta@example.com', 'id,email:2\tb@example.com']);
    }
  });

  it('counts but does not visit a row longer than 1 MiB, so memory stays bounded', () => {
    const huge = 'y'.repeat(3 * 1024 * 1024);
    const text = `COPY public.users (id, email) FROM stdin;\n1\t${huge}\n2\tb\n\\.\n${END}`;
    const seen: string[] = [];
    const result = statsOf(text, 40, { rowVisitor: () => (line) => seen.push(line.toString().slice(0, 10)) });
    expect(result.tables['public.users']).toBe(2);
    expect(result.skippedRows).toBe(1);
    expect(seen).toEqual(['2\tb']);
  });

  it('rows: false reads only the size and the end', () => {
    const result = statsOf(DUMP + END, 3, { rows: false });
    expect(result).toMatchObject({ tables: {}, complete: true });
  });

  it('copyBlockOf reads quoted names and columns; copyField undoes COPY escapes', () => {
    expect(copyBlockOf(Buffer.from('COPY public."Users" ("E-mail", id) FROM stdin;'))).toEqual({ table: 'public.Users', columns: ['E-mail', 'id'] });
    expect(copyBlockOf(Buffer.from('COPY public.users TO stdout;'))).toBeNull();
    expect(copyField('\\N')).toBeNull();
    expect(copyField('a\\tb\\\\c\\x41\\101')).toBe('a\tb\\cAA');
  });
});
