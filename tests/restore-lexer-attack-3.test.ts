import { afterAll, describe, expect, it } from 'vitest';
import { filtered, latin1, outcome, psqlAsOwner } from './helpers/filter-attack';

/**
 * Third look at the lexer's settings follower (279bb2f). It followed the SET statements it saw, but
 * the server (and psql, which takes the value the server reports) also changes these settings where
 * no SET is: ROLLBACK TO SAVEPOINT undoes a SET made after the savepoint (the server reports the old
 * value, psql reads the next line with it) while the lexer kept the SET's value; and set_config in a
 * statement whose first word is not SET/SELECT/UPDATE (VALUES, WITH) was neither followed nor refused.
 * Then psql splits `SELECT 'a\'; COMMIT; -- ';` at the first `;` (standard strings on) while the lexer
 * (off) reads one string, so the filter passed a COMMIT that psql runs. Now the filter refuses ROLLBACK
 * TO and any set_config but search_path's at top level.
 *
 * Separately, the strict follower refused any SET/SELECT/UPDATE whose text merely contained
 * "client_encoding" or "standard_conforming_strings": pg_dump's own setval of a sequence named so.
 */

/** psql (standard strings on) runs the COMMIT; a lexer that believes them off reads `'a\'; COMMIT; -- '` as one string. */
const SCS_TAIL = "SELECT 'a\\'; COMMIT; -- ';\nCREATE TABLE public.escaped (v int);\nSELECT 1/0;\n";
/** U+3042 is E3 81 82 in UTF-8: a lexer in SJIS reads 0x82 and the quote as one character. */
const SJIS_TAIL = "SELECT '\xe3\x81\x82'; COMMIT; -- ';\nCREATE TABLE public.escaped (v int);\nSELECT 1/0;\n";

const SAVEPOINT_SCS = `CREATE TABLE public.committed (v int);\nSAVEPOINT s;\nSET standard_conforming_strings = off;\nROLLBACK TO SAVEPOINT s;\n${SCS_TAIL}`;

const CASES: Array<[name: string, dump: string]> = [
  ['ROLLBACK TO SAVEPOINT undoes SET standard_conforming_strings = off', SAVEPOINT_SCS],
  ["ROLLBACK TO SAVEPOINT undoes SET client_encoding = 'SJIS'", `SAVEPOINT s;\nSET client_encoding = 'SJIS';\nROLLBACK TO SAVEPOINT s;\n${SJIS_TAIL}`],
  ['set_config in VALUES (first word not followed)', `SET standard_conforming_strings = off;\nVALUES (pg_catalog.set_config('standard_conforming_strings', 'on', false));\n${SCS_TAIL}`],
  ['set_config in a WITH query', `SET standard_conforming_strings = off;\nWITH s AS (SELECT pg_catalog.set_config('standard_conforming_strings', 'on', false)) SELECT * FROM s;\n${SCS_TAIL}`],
  ['set_config with the name concatenated', `SET standard_conforming_strings = off;\nSELECT pg_catalog.set_config('standard_' || 'conforming_strings', 'on', false);\n${SCS_TAIL}`],
];

describe('a setting psql follows changes where the lexer does not see it', () => {
  it.each(CASES)('%s: the COMMIT is left out, or the dump refused', async (_name, dump) => {
    for (const bytewise of [false, true]) {
      const result = await outcome(latin1(dump), bytewise);
      if ('refused' in result) continue;
      expect(result.out, JSON.stringify(result.out)).not.toContain('COMMIT');
    }
  });
});

describe('honest pg_dump output is not refused', () => {
  it('setval of a sequence whose name contains client_encoding / standard_conforming_strings', async () => {
    const dump = [
      'SET client_encoding = \'UTF8\';',
      'SET standard_conforming_strings = on;',
      'CREATE TABLE public.client_encoding_log (id integer NOT NULL);',
      'CREATE SEQUENCE public.client_encoding_log_id_seq AS integer START WITH 1 INCREMENT BY 1 NO MINVALUE NO MAXVALUE CACHE 1;',
      "SELECT pg_catalog.setval('public.client_encoding_log_id_seq', 1, false);",
      'CREATE TABLE public.standard_conforming_strings_test (id integer NOT NULL);',
      "SELECT pg_catalog.setval('public.standard_conforming_strings_test_id_seq', 7, true);",
      '',
    ].join('\n');
    for (const bytewise of [false, true]) expect(await outcome(latin1(dump), bytewise)).toEqual({ out: dump });
  });
});

describe('through psql', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('ROLLBACK TO SAVEPOINT of a SET standard_conforming_strings: the filtered dump commits nothing when it fails', async () => {
    let input: Buffer;
    try {
      input = await filtered(latin1(SAVEPOINT_SCS));
    } catch {
      return; // refused: psql gets none of it
    }
    const run = await psqlAsOwner(input, cleanup);
    expect(run.status).not.toBe(0);
    expect(run.tables, run.stderr).toBeNull();
  });
});
