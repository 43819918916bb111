import { afterAll, describe, expect, it } from 'vitest';
import { latin1, outcome, psqlAsOwner } from './helpers/filter-attack';

/**
 * Seventh look (helper-19). Each dump was passed by the filter, yet real psql 15 + the server committed
 * `escaped` (the final SELECT 1/0 fails, so without a COMMIT nothing would stay) or created an
 * extension outside the allow-list (allowed: pgcrypto only). psql counts BEGIN/CASE/END in CREATE
 * FUNCTION by words and sends what follows up to its END as one query, whose statements the server runs
 * where its grammar ends the body earlier; and psql reads `:begin` as a variable, not a word. Now each
 * statement psql joins is judged on its own, and psql variables are one token.
 * (A DO block that creates an extension is not a text matter: the app checks the extensions after the load.)
 */

const CASES: Array<[name: string, dump: string, chunking: boolean | number]> = [
  // 1. psql and the lexer agree that `CREATE FUNCTION public.begin() ...;` does not end at its `;` (psqlscan.l counts the
  //    identifier `begin`), so psql sends everything up to the `;` after `end` as ONE multi-statement query; the server runs each
  //    statement in it, COMMIT included, while the filter judged the whole as one CREATE (kept). Impact: arbitrary COMMIT (or any
  //    skipped statement) reaches the server; part of the dump commits on its own.
  ['function named begin: ; COMMIT; ... end; sent as one query', `CREATE FUNCTION public.begin() RETURNS int LANGUAGE sql AS 'select 1';\nCOMMIT;\nCREATE TABLE public.escaped (v int);\nSELECT 1 AS end;\nSELECT 1/0;\n`, false],
  ['procedure named begin (byte by byte)', `CREATE PROCEDURE public.begin() LANGUAGE sql AS 'select 1';\nCOMMIT;\nCREATE TABLE public.escaped (v int);\nSELECT 1 AS end;\nSELECT 1/0;\n`, true],
  // 1b. Same root cause with a real BEGIN ATOMIC: psql counts `AS case` (depth 2) so it joins through `END; COMMIT; ... end;`;
  //     the server's grammar closes the body at the first END and then runs COMMIT.
  ['BEGIN ATOMIC SELECT 1 AS case; END; COMMIT; ... AS end;', `CREATE FUNCTION public.f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS case; END;\nCOMMIT;\nCREATE TABLE public.escaped (v int);\nSELECT 1 AS end;\nSELECT 1/0;\n`, false],
  // 1c. Same joined query carries a CREATE EXTENSION the allow-list refuses (decide sees only the leading CREATE FUNCTION).
  ['function named begin carries CREATE EXTENSION hstore', `CREATE FUNCTION public.begin() RETURNS int LANGUAGE sql AS 'select 1';\nCREATE EXTENSION hstore;\nSELECT 1 AS end;\nCREATE TABLE public.escaped (v public.hstore);\n`, false],
  // 2. psql reads `:begin` as a (undefined) psql variable reference, echoed as is and NOT counted as an identifier for BEGIN
  //    ATOMIC; the lexer reads `:` then the word begin and raises beginDepth, so it takes `; COMMIT; ... end;` for one CREATE
  //    FUNCTION (kept) while psql ends the CREATE at its `;` and runs COMMIT on its own. Impact: COMMIT reaches the server.
  [':begin (psql variable syntax) in CREATE FUNCTION', `CREATE FUNCTION public.f(begin int) RETURNS int[] LANGUAGE sql RETURN ('{1,2}'::int[])[1:begin];\nCOMMIT;\nCREATE TABLE public.escaped (v int);\nSELECT 1 AS end;\nSELECT 1/0;\n`, false],
];

describe('psql/the server run what the filter judged as one kept statement (seventh look)', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it.each(CASES)('%s: refused, or nothing committed / no extension', async (_name, dump, chunking) => {
    const result = await outcome(latin1(dump), chunking);
    if ('refused' in result) return;
    const psql = await psqlAsOwner(latin1(result.out), cleanup);
    expect(psql.tables).toBeNull();
  });
});

describe('honest statements with psql variable syntax or BEGIN ATOMIC bodies', () => {
  it.each([
    ['array slices and casts', "CREATE VIEW public.v AS SELECT (ARRAY[1,2,3])[1:2] AS a, x::text, y[2:begin] FROM public.t;\nSELECT 1;\n"],
    ['a BEGIN ATOMIC body of several statements with CASE', 'CREATE FUNCTION public.g(x integer) RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n INSERT INTO public.t VALUES (1);\n SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END AS y;\nEND;\nSELECT 1;\n'],
  ])('%s: kept as it is', async (_name, dump) => {
    for (const chunking of [false, true, 5]) expect(await outcome(latin1(dump), chunking)).toEqual({ out: dump });
  });
});
