import { afterAll, describe, expect, it } from 'vitest';
import { latin1, outcome, psqlAsOwner } from './helpers/filter-attack';
import { withClient } from './helpers/pg';

/**
 * Eighth look (helper-20): attacks on judgeJoined (c068070). Each dump below was passed by the filter; real psql 15 + the
 * server then committed part of the dump, or kept database-level changes the filter leaves out at top level. Now a last
 * `END` piece closes only a BEGIN ATOMIC body, and a piece the rules would leave out at top level is refused.
 */

const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

describe('a joined query whose last piece is a top-level END (COMMIT)', () => {
  // psql counts the routine name `begin` (depth 1) and joins `...; CREATE TABLE ...; END;` into one query, closing at END;
  // judgeJoined lets a last piece `END;` through unjudged, assuming it closes a BEGIN ATOMIC body, but there is no body:
  // the server runs END as COMMIT of the app's transaction. Impact: everything before it commits on its own (escaped stays).
  it.each([
    ['function named begin ... END;', `CREATE FUNCTION public.begin() RETURNS int LANGUAGE sql AS 'select 1';\nCREATE TABLE public.escaped (v int);\nEND;\nSELECT 1/0;\n`, false],
    ['procedure named begin ... END /* */ ; (byte by byte)', `CREATE PROCEDURE public.begin() LANGUAGE sql AS 'select 1';\nCREATE TABLE public.escaped (v int);\nEND /* x */ ;\nSELECT 1/0;\n`, true],
  ] as Array<[string, string, boolean | number]>)('%s: refused, or nothing committed', async (_name, dump, chunking) => {
    const result = await outcome(latin1(dump), chunking);
    if ('refused' in result) return;
    const psql = await psqlAsOwner(latin1(result.out), cleanup);
    expect(psql.tables).toBeNull();
  });
});

describe('database-level statements in a joined piece', () => {
  // At top level decide() leaves out ALTER DATABASE / GRANT ... ON DATABASE / COMMENT ON DATABASE ('database') and ALTER
  // DEFAULT PRIVILEGES ('owner'); judgeJoined keeps them in a piece, saying "the server refuses those to the role", but the
  // restore role OWNS the database and the server runs them (psql's :DBNAME names it). Impact: persistent database settings
  // (e.g. default_transaction_read_only=on bricks the app's database; CONNECTION LIMIT), CREATE granted to PUBLIC, default privileges.
  it('ALTER DATABASE :DBNAME SET ... in a piece: refused, or not applied', async () => {
    const marker = 'lifeboat_attack8_marker';
    const dump = `CREATE FUNCTION public.begin() RETURNS int LANGUAGE sql AS 'select 1';\nALTER DATABASE :DBNAME SET application_name = '${marker}';\nGRANT CREATE ON DATABASE :DBNAME TO PUBLIC;\nCOMMENT ON DATABASE :DBNAME IS '${marker}';\nALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC;\nSELECT 1 AS end;\n`;
    // The same statement at top level is left out.
    expect(await outcome(latin1(`ALTER DATABASE :DBNAME SET application_name = '${marker}';\n`), false)).toEqual({ out: '\n' });
    const result = await outcome(latin1(dump), false);
    if ('refused' in result) return;
    await psqlAsOwner(latin1(result.out), cleanup);
    const applied = await withClient('postgres', async (client) =>
      (await client.query(`SELECT d.datname FROM pg_database d LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 WHERE $1 = ANY (s.setconfig) OR shobj_description(d.oid, 'pg_database') = $2`, [`application_name=${marker}`, marker])).rows,
    );
    expect(applied).toEqual([]);
  });
});
