import { afterAll, describe, expect, it } from 'vitest';
import { latin1, outcome, psqlAsOwner } from './helpers/filter-attack';

/**
 * Fifth look at the restore filter (helper-17, on the fixes for attack-4). Each dump below was passed
 * by the filter, yet real psql 15 ran a statement the filter took for part of another one, a
 * comment, a string or COPY data: a COMMIT that commits `escaped` (the last SELECT 1/0 fails, so
 * without the COMMIT nothing would stay), or a CREATE EXTENSION that is not allowed. Now each is
 * refused, or read as psql reads it: a -- comment ends at a carriage return; BEGIN/CASE/END count
 * only outside parentheses (CASE only inside a BEGIN); a word with multibyte characters, or cut by a
 * chunk's end, is one identifier; a multibyte character is measured with its next bytes at hand;
 * SQL after a COPY on its line, and options after FROM stdin, are refused.
 */

const TAIL = 'CREATE TABLE public.escaped (v int);\nSELECT 1/0;\n';
/** psql (standard strings on) runs the COMMIT; a lexer that believes them off reads one string. */
const SCS_TAIL = "SELECT 'a\\'; COMMIT; -- ';\n";
const WHOLE = false;

const gb18030 = `SET client_encoding = 'GB18030';\nSELECT '${'x'.repeat(100)}\x81\x30\x81\x30'; COMMIT; -- ';\n${TAIL}`;

const CASES: Array<[name: string, dump: string, chunking: boolean | number, table: string]> = [
  // psql (psqlscan.l, like the server) ends a -- comment at \r as well as \n: `;` and COMMIT after a \r run.
  // The lexer's LineComment reads to \n only, so the COMMIT is comment to it and is passed on.
  ['-- comment ended by \\r, then ; COMMIT', `-- x\r; COMMIT;\n${TAIL}`, WHOLE, 'escaped'],
  ['-- comment ended by \\r inside a statement', `SELECT 1 -- x\r; COMMIT;\n${TAIL}`, true, 'escaped'],
  // Same \r rule in tokenize (decide): `CREATE -- x\rEXTENSION hstore` is CREATE EXTENSION to the server, `CREATE ;` to decide (kept).
  ['CREATE -- \\r EXTENSION (decide reads the comment to \\n)', `CREATE -- x\rEXTENSION hstore\n;\nCREATE TABLE public.escaped (v public.hstore);\n`, WHOLE, 'escaped'],
  // psql counts BEGIN/CASE/END of CREATE FUNCTION only at paren depth 0; the lexer counts them inside parentheses,
  // so it waits for an END that psql never needs: the following `;`, COMMIT and the rest are one CREATE FUNCTION to it (kept).
  ['CREATE FUNCTION f(begin int) (BEGIN inside parentheses)', `CREATE FUNCTION public.f(begin int) RETURNS int LANGUAGE sql AS 'select 1';\nCOMMIT;\n${TAIL}`, WHOLE, 'escaped'],
  ['RETURN (SELECT 1 AS begin)', `CREATE FUNCTION public.f() RETURNS int LANGUAGE sql RETURN (SELECT 1 AS begin);\nCOMMIT;\n${TAIL}`, 7, 'escaped'],
  ['RETURN (SELECT 1 AS case) (CASE counted outside BEGIN, inside parentheses)', `CREATE FUNCTION public.f() RETURNS int LANGUAGE sql RETURN (SELECT 1 AS case);\nCOMMIT;\n${TAIL}`, WHOLE, 'escaped'],
  // In a multibyte client encoding the lexer reads a word's bytes after a multibyte character as a new token;
  // psql reads one identifier. Then e'...' is an E-string to the lexer, a type name and a plain string to psql:
  ["SJIS: <あ>e'\\' (the e after a multibyte character is no E prefix)", `SET client_encoding = 'SJIS';\nCREATE DOMAIN public."\x82\xa0e" AS text;\nSELECT \x82\xa0e'\\'; COMMIT; -- ';\n${TAIL}`, WHOLE, 'escaped'],
  // ... `begin` in `あbegin` starts BEGIN ATOMIC to the lexer:
  ['SJIS: CREATE FUNCTION <あ>begin()', `SET client_encoding = 'SJIS';\nCREATE FUNCTION public.\x82\xa0begin() RETURNS int LANGUAGE sql AS 'select 1';\nCOMMIT;\n${TAIL}`, WHOLE, 'escaped'],
  // ... and after 0x81 0x40 (U+3000, trail byte not an identifier byte) `$a$` opens a dollar quote to the lexer, continues the identifier for psql:
  ['SJIS: SELECT 1 AS <U+3000>$a$', `SET client_encoding = 'SJIS';\nSELECT 1 AS \x81\x40$a$; COMMIT; -- $a$\n;\n${TAIL}`, WHOLE, 'escaped'],
  // GB18030: charLength looks at the byte after the lead byte; at a chunk's end it is missing and a 4-byte
  // character is taken for 2 bytes, so the next lead byte swallows the closing quote. gunzip's chunk boundaries are the dump maker's to place.
  ['GB18030: 4-byte character split by a chunk boundary after its lead byte', gb18030, latin1(gb18030).indexOf(0x81) + 1, 'escaped'],
  // psql runs the rest of a COPY ... FROM stdin line after the COPY data; the lexer reads it before. A string left
  // open there swallows the data and its \. for the lexer, which then takes the SQL after as COPY data.
  ['COPY ... FROM stdin; SELECT \'<newline> (a string opened after the COPY on its line)', `CREATE TABLE public.t (v text);\nCOPY public.t (v) FROM stdin; SELECT '\n1\n\\.\n';\nCOMMIT;\nCREATE TABLE public.escaped (v int);\n\\.\nSELECT 1/0;\n`, WHOLE, 'escaped'],
  // A COPY FROM stdin not ending in `FROM stdin` (options, WHERE) puts psql in COPY mode, but the lexer reads the
  // rows as SQL: it follows a SET in them (psql sends it as a row) and then misreads standard strings.
  ['COPY ... FROM stdin WITH (FORMAT text): a SET row followed', `CREATE TABLE public.t (v text);\nCOPY public.t (v) FROM stdin WITH (FORMAT text);\nSET standard_conforming_strings = off;\n\\.\n${SCS_TAIL}${TAIL}`, WHOLE, 'escaped'],
  ['COPY ... FROM stdin WHERE true: a SET row followed', `CREATE TABLE public.t (v text);\nCOPY public.t (v) FROM stdin WHERE true;\nSET standard_conforming_strings = off;\n\\.\n${SCS_TAIL}${TAIL}`, true, 'escaped'],
];

describe('psql runs what the filter took for part of something else (fifth look)', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it.each(CASES)('%s: refused, or nothing committed', async (_name, dump, chunking, table) => {
    const result = await outcome(latin1(dump), chunking);
    if ('refused' in result) return;
    const run = await psqlAsOwner(latin1(result.out), cleanup);
    expect(run.tables ?? [], run.stderr).not.toContain(table);
  }, 60_000);
});

describe('honest dumps read as before', () => {
  const CLUSTER = '--\r\n-- PostgreSQL database cluster dump\r\n--\r\n\r\n--\r\n-- Database "other" dump\r\n--\r\n\r\n\\connect other\r\n\r\nCREATE TABLE public.o (v int);\r\n\r\n--\r\n-- Database "immich" dump\r\n--\r\n\r\n\\connect immich\r\n\r\nCREATE TABLE public.i (v int); -- kept\r\n';
  it('a CRLF cluster dump: its section headers still found, other sections left out', async () => {
    for (const chunking of [WHOLE, true, 5]) {
      const result = await outcome(latin1(CLUSTER), chunking);
      expect(result, String(chunking)).toEqual({ out: expect.stringMatching(/^(--)?[\r\n]*CREATE TABLE public\.i \(v int\); -- kept\r\n$/) });
      if ('out' in result) expect(result.out.split('\n').length).toBe(CLUSTER.split('\n').length);
    }
  });

  it.each([
    ['a parameter named begin (pg_dump does not quote it)', 'CREATE FUNCTION public.f(begin integer) RETURNS integer LANGUAGE sql AS \'select 1\';\nSELECT 1;\n', null],
    ['BEGIN ATOMIC with a CASE inside', 'CREATE FUNCTION public.g(x integer) RETURNS integer LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END; SELECT 2; END;\nSELECT 1;\n', null],
    ["SJIS identifiers before strings and dollar signs", "SET client_encoding = 'SJIS';\nCREATE TABLE public.\x82\xa0e (v text);\nSELECT 'a\\' AS \x82\xa0$x, \x81\x40e$1;\nSELECT 1;\n", null],
    ['a COPY with a CRLF after stdin', 'CREATE TABLE public.t (v text);\r\nCOPY public.t (v) FROM stdin;\r\nx\r\n\\.\r\nSELECT 1;\r\n', 'CREATE TABLE public.t (v text);\r\nCOPY public.t (v) FROM stdin WITH (FREEZE);\r\nx\r\n\\.\r\nSELECT 1;\r\n'],
  ])('%s', async (_name, dump, expected) => {
    for (const chunking of [WHOLE, true, 5]) expect(await outcome(latin1(dump), chunking), String(chunking)).toEqual({ out: expected ?? dump });
  });
});
