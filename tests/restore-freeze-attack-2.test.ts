import { afterAll, describe, expect, it } from 'vitest';
import { filtered, latin1, outcome, psqlAsOwner } from './helpers/filter-attack';

/**
 * Second look at the freezeCopies rewrite (fixed in 831dd9c). The rewrite itself holds: it only
 * appends to pg_dump's exact ` FROM stdin;` when the lexer already takes rows to follow. What did not
 * hold was the lexer it relies on: below are inputs where psql runs as a statement a COMMIT the
 * filter's lexer read as part of a string (or COPY rows), so the filter did not leave it out, and part
 * of a one-transaction load committed on its own. Now the lexer follows what psql follows (every name
 * of the multibyte encodings, SET SESSION/LOCAL/NAMES, RESET, quoted values) and the filter refuses
 * what it cannot follow (\;, dollar tags past its lookahead, set_config or pg_settings changes of
 * client_encoding / standard_conforming_strings). Changes made where no lexer can see them (EXECUTE in
 * a DO block) remain: a staged load is dropped on failure, an in-place one rolled back to its restore point.
 */

/** After the desync: a COMMIT psql runs, then a lone quote in a comment that closes the lexer's "string". */
const TAIL = "COMMIT;\nCREATE TABLE public.escaped (v int);\nSELECT 1; -- '\nSELECT 1/0;\n";
const LONG_TAG = `$${'a'.repeat(90)}$`;

/**
 * `\;` is psql's way of putting a semicolon into the query buffer without sending it (psqlscan.l,
 * "\\"[;:]; not a meta-command, so restricted mode allows it). The lexer ends the statement there:
 * `COPY ... FROM stdin\;` then has `stdin`, `` as its last words, so it takes no rows to follow,
 * while psql sends `COPY public.t (v) FROM stdin;\nSELECT 1;` as one query and reads the next lines
 * up to `\.` as rows. The lone quote row opens a string for the lexer that runs over the COMMIT.
 */
const BACKSLASH_SEMICOLON = "CREATE TABLE public.t (v text);\nCOPY public.t (v) FROM stdin\\;\nSELECT 1;\n'\n\\.\n" + TAIL;

const CASES: Array<[name: string, dump: string]> = [
  ['\\; after COPY ... FROM stdin: psql sends the COPY (rows follow), the lexer sees none', BACKSLASH_SEMICOLON],
  // psql and PostgreSQL take a dollar-quote tag of any length; dollarTagAt stops at 78 bytes.
  ['a dollar quote with a 90-byte tag', `SELECT ${LONG_TAG} ' ${LONG_TAG};\n${TAIL}`],
  // Aliases PostgreSQL knows (encnames.c) that UNSAFE_ENCODINGS / charLength get wrong.
  ["client_encoding 'windows936' (GBK: 0x81 0x5C is one character)", `SET client_encoding = 'windows936';\nSELECT E'\x81\\';\n${TAIL}`],
  ["client_encoding 'MSKANJI' (SJIS: 0xB1 is a one-byte katakana)", `SET client_encoding = 'MSKANJI';\nSELECT '\xb1';\n${TAIL}`],
  ["client_encoding 'TCVN' (WIN1258, one byte per character)", `SET client_encoding = 'TCVN';\nSELECT '\xc0';\n${TAIL}`],
  // SET forms the filter does not follow (FilterCore.track).
  ['SET SESSION client_encoding', `SET SESSION client_encoding = 'SJIS';\nSELECT E'\x95\\';\n${TAIL}`],
  ['a comment before the value', `SET client_encoding = /* 'UTF8' */ 'SJIS';\nSELECT E'\x95\\';\n${TAIL}`],
  ['the value as a quoted identifier', `SET client_encoding = "SJIS";\nSELECT E'\x95\\';\n${TAIL}`],
  ['RESET client_encoding (the lexer stays in SJIS, psql is back in UTF8)', `SET client_encoding = 'SJIS';\nRESET client_encoding;\nSELECT '\xe3\x81\x82';\n${TAIL}`],
];

describe('a COMMIT psql runs as a statement is left out by the filter, or the dump is refused', () => {
  it.each(CASES)('%s', async (_name, dump) => {
    const input = latin1(dump);
    for (const bytewise of [false, true]) {
      const result = await outcome(input, bytewise);
      if ('refused' in result) {
        expect(result.refused).toMatch(/Lifeboat does not follow/);
        continue;
      }
      expect(result.out, JSON.stringify(result.out)).not.toMatch(/^COMMIT;$/m);
      expect(result.out.split('\n').length).toBe(dump.split('\n').length);
    }
  });

  it('refuses \\; and dollar tags longer than it follows, whole or in chunks of one byte', async () => {
    for (const bytewise of [false, true]) {
      expect(await outcome(latin1(BACKSLASH_SEMICOLON), bytewise)).toEqual({ refused: expect.stringMatching(/\\; \(statements joined into one query\)/) });
      expect(await outcome(latin1(`SELECT ${LONG_TAG} ' ${LONG_TAG};\n${TAIL}`), bytewise)).toEqual({ refused: expect.stringMatching(/dollar-quote tag longer than/) });
    }
  });

  it('follows the encodings and settings psql follows: a quote after a multibyte lead byte is part of the character', async () => {
    // Each: psql reads the quote as the second byte of a character, so the string goes on to the next quote.
    const cases = [
      "SET client_encoding = 'windows936';\nSELECT '\x81';\n",
      "SET SESSION client_encoding = 'SJIS';\nSELECT '\x95';\n",
      'SET client_encoding = "BIG5";\nSELECT \'\xa4\';\n',
      "SET NAMES 'UHC';\nSELECT '\xb0';\n",
      "SET client_encoding TO johab;\nSELECT '\x8f\x41';\n",
    ];
    for (const dump of cases) {
      // The string is still open after the second line: a COMMIT there is inside it, and stays.
      const inside = await outcome(latin1(`${dump}COMMIT;\n';\n`), false);
      expect('out' in inside && inside.out, dump).toContain('COMMIT;');
      // Once the string closes, a COMMIT is a statement, and is left out.
      const after = await outcome(latin1(`${dump}';\nCOMMIT;\n`), false);
      expect('out' in after && after.out, dump).not.toContain('COMMIT');
    }
    // Back to UTF-8 (where a quote is never part of a character) after RESET, and in a cluster of settings.
    const reset = await outcome(latin1("SET client_encoding = 'SJIS';\nRESET client_encoding;\nSELECT '\x95';\nCOMMIT;\n"), false);
    expect('out' in reset && reset.out).not.toContain('COMMIT');
  });

  it('refuses a change of client_encoding or standard_conforming_strings it cannot follow', async () => {
    for (const statement of [
      "SELECT pg_catalog.set_config('client_encoding', 'SJIS', false);",
      "UPDATE pg_catalog.pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings';",
      "SET client_encoding = 'SJIS', 'UTF8';",
      "SET standard_conforming_strings = 'maybe';",
    ]) {
      expect(await outcome(latin1(`${statement}\nSELECT 1;\n`), false), statement).toEqual({ refused: expect.stringMatching(/Lifeboat does not follow/) });
    }
  });
});

describe('through psql', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('\\; that would hide a COMMIT from the filter: the dump is refused before psql gets any of it', async () => {
    await expect(filtered(latin1(BACKSLASH_SEMICOLON))).rejects.toThrow(/Lifeboat does not follow/);
    await expect(filtered(latin1(BACKSLASH_SEMICOLON), { bytewise: true })).rejects.toThrow(/Lifeboat does not follow/);
    // Proof that psql would have run it: fed to psql as it is (no filter), the COMMIT leaves tables behind.
    const run = await psqlAsOwner(latin1(BACKSLASH_SEMICOLON), cleanup);
    expect(run.status).not.toBe(0);
    expect(run.tables, run.stderr).toEqual(['escaped', 't']);
  });
});
