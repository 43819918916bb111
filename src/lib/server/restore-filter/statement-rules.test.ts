import { describe, expect, it } from 'vitest';
import { PsqlLexer, type Token } from './psql-lexer';
import {
  cookTokens,
  decodeUnicodeEscapes,
  ExtensionNotAllowedError,
  isPreambleStatement,
  judgeStatement,
  type RuleContext,
  type Verdict,
} from './statement-rules';

const context: RuleContext = {
  existingRoles: new Set(['postgres', 'immich_app', 'Reader Role']),
  allowedExtensions: new Set(['pg_trgm', 'vector', 'cube']),
  preparedSchemas: new Set(['public', 'vectors']),
};

/** The cooked top-level tokens of one statement, as the lexer reads them. */
function tokensOf(sql: string): readonly Token[] {
  const found: Token[][] = [];
  new PsqlLexer({ statementEnd: (_end, statement) => found.push([...statement.tokens]) }).scan(Buffer.from(sql), true);
  expect(found).toHaveLength(1);
  return cookTokens(found[0]);
}

const judge = (sql: string, ctx: RuleContext = context): Verdict =>
  judgeStatement(tokensOf(sql), ctx, { complete: true, text: Buffer.from(sql) });
const action = (sql: string) => {
  const verdict = judge(sql);
  return verdict.action === 'skip' ? `skip:${verdict.category}` : verdict.action;
};

describe('judgeStatement', () => {
  it('rewrites the pg_dump search_path reset (exact statement only)', () => {
    expect(judge("SELECT pg_catalog.set_config('search_path', '', false);")).toEqual({
      action: 'rewrite',
      replacement: Buffer.from("SELECT pg_catalog.set_config('search_path', 'public, pg_catalog', true);"),
    });
    expect(action("SELECT pg_catalog.set_config('search_path', 'x', false);")).toBe('keep');
    expect(action("select pg_catalog.set_config('search_path', '', false);")).toBe('keep');
  });

  it.each([
    'CREATE DATABASE immich WITH TEMPLATE = template0;',
    'ALTER DATABASE immich OWNER TO immich_app;',
    'DROP DATABASE IF EXISTS immich;',
    "COMMENT ON DATABASE immich IS 'x';",
    "SECURITY LABEL FOR selinux ON DATABASE immich IS 'x';",
    'GRANT CONNECT,TEMPORARY ON DATABASE immich TO nobody;',
    'REVOKE ALL ON DATABASE template1 FROM PUBLIC;',
    "UPDATE pg_catalog.pg_database SET datistemplate = false WHERE datname = 'template1';",
    'update PG_DATABASE set datallowconn = true;',
  ])('skips database statement %s', (sql) => {
    expect(action(sql)).toBe('skip:database');
  });

  it('skips CREATE EXTENSION of an allowed extension and reports its schema', () => {
    expect(judge('CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;')).toEqual({
      action: 'skip',
      category: 'extension',
      extension: { name: 'pg_trgm', schema: 'public' },
    });
    expect(judge('create extension "vector" version \'0.5\' cascade;')).toMatchObject({ extension: { name: 'vector', schema: null } });
    for (const sql of ['DROP EXTENSION IF EXISTS pg_trgm;', 'ALTER EXTENSION cube UPDATE;', "COMMENT ON EXTENSION pg_trgm IS 'x';"]) {
      expect(action(sql)).toBe('skip:extension');
    }
  });

  it('refuses an extension that is not allowed, naming it', () => {
    expect(() => judge('CREATE EXTENSION adminpack;')).toThrow(ExtensionNotAllowedError);
    expect(() => judge('CREATE EXTENSION adminpack;')).toThrow(
      'The dump needs the PostgreSQL extension "adminpack", which Lifeboat does not allow in a restore (allowed: cube, pg_trgm, vector).',
    );
    // DROP EXTENSION of anything is harmless to leave out.
    expect(action('DROP EXTENSION adminpack;')).toBe('skip:extension');
  });

  it.each([
    'ALTER TABLE public.assets OWNER TO immich_app;',
    'ALTER FUNCTION public.f(x integer, y text) OWNER TO postgres;',
    'ALTER SCHEMA public OWNER TO "Reader Role";',
    'ALTER LARGE OBJECT 16384 OWNER TO nobody;',
    'ALTER TYPE public.t OWNER TO CURRENT_USER;',
    'ALTER PUBLICATION owner OWNER TO x;',
    'ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT SELECT ON TABLES TO nobody;',
  ])('skips owner change %s', (sql) => {
    expect(action(sql)).toBe('skip:owner');
  });

  it.each([
    'ALTER TABLE t RENAME owner TO owner2;',
    'ALTER TABLE t RENAME COLUMN owner TO x;',
    'ALTER TABLE t RENAME CONSTRAINT owner TO x;',
    'ALTER TYPE t RENAME ATTRIBUTE owner TO x;',
    'ALTER POLICY p ON owner TO x;',
    'ALTER TABLE ONLY public.assets ADD CONSTRAINT assets_pkey PRIMARY KEY (id);',
    'ALTER SEQUENCE public.s OWNED BY public.t.id;',
  ])('keeps %s', (sql) => {
    expect(action(sql)).toBe('keep');
  });

  it.each([
    'CREATE ROLE immich_app;',
    'ALTER ROLE postgres WITH SUPERUSER;',
    'DROP ROLE IF EXISTS "Reader Role";',
    'CREATE USER x;',
    'ALTER USER mapping SET work_mem = 1;',
    'DROP GROUP g;',
    'ALTER GROUP g ADD USER u;',
    'CREATE TABLESPACE t LOCATION \'/x\';',
    'DROP TABLESPACE t;',
    'GRANT pg_read_all_data TO immich_app;',
    'GRANT a, b TO c WITH ADMIN OPTION;',
    'REVOKE ADMIN OPTION FOR a FROM b;',
  ])('skips role statement %s', (sql) => {
    expect(action(sql)).toBe('skip:role');
  });

  it('decodes U& identifiers (with UESCAPE) before comparing names', () => {
    expect(action('ALTER ROLE U&"\\0070ostgres" NOLOGIN;')).toBe('skip:role');
    expect(tokensOf('ALTER ROLE U&"\\0070ostgres" NOLOGIN;')[2]).toEqual({ kind: 'ident', text: 'postgres', unicode: false });
    expect(tokensOf("GRANT SELECT ON t TO U&\"!0070ostgres\" UESCAPE '!';").slice(-1)).toEqual([
      { kind: 'ident', text: 'postgres', unicode: false },
    ]);
    expect(action("GRANT SELECT ON t TO U&\"!0070ostgres\" UESCAPE '!';")).toBe('keep');
  });

  it('keeps user mappings', () => {
    expect(action('CREATE USER MAPPING FOR postgres SERVER s;')).toBe('keep');
    expect(action('DROP USER MAPPING IF EXISTS FOR postgres SERVER s;')).toBe('keep');
  });

  it('skips a GRANT or REVOKE naming a role this server lacks, and lists it', () => {
    expect(judge('GRANT SELECT ON TABLE public.assets TO nobody;')).toEqual({ action: 'skip', category: 'grant', missingRoles: ['nobody'] });
    expect(judge('REVOKE ALL ON SCHEMA public FROM "Old Role", GROUP ghosts CASCADE;')).toEqual({
      action: 'skip',
      category: 'grant',
      missingRoles: ['Old Role', 'ghosts'],
    });
  });

  it('keeps a GRANT or REVOKE to existing roles and pseudo-roles', () => {
    expect(action('GRANT SELECT ON TABLE public.assets TO immich_app;')).toBe('keep');
    expect(action('GRANT SELECT (a, b) ON t TO "Reader Role" WITH GRANT OPTION;')).toBe('keep');
    expect(action('REVOKE USAGE ON SCHEMA public FROM PUBLIC;')).toBe('keep');
    expect(action('GRANT ALL ON FUNCTION f(integer) TO CURRENT_USER, SESSION_USER, current_role, "public";')).toBe('keep');
    expect(action('GRANT SELECT ON TABLE public.database TO immich_app;')).toBe('keep');
  });

  it('skips CREATE/DROP SCHEMA of schemas the app prepared', () => {
    expect(action('CREATE SCHEMA public;')).toBe('skip:schema');
    expect(action('CREATE SCHEMA IF NOT EXISTS vectors AUTHORIZATION x;')).toBe('skip:schema');
    expect(action('DROP SCHEMA IF EXISTS public CASCADE;')).toBe('skip:schema');
    expect(action('DROP SCHEMA public, vectors;')).toBe('skip:schema');
    expect(action('DROP SCHEMA public, other;')).toBe('keep');
    expect(action('CREATE SCHEMA other;')).toBe('keep');
  });

  it('keeps everything else, including what the server refuses by itself', () => {
    for (const sql of [
      'SET ROLE postgres;',
      'SET SESSION AUTHORIZATION postgres;',
      "COPY t TO PROGRAM 'id';",
      "DO $$ BEGIN EXECUTE 'x'; END $$;",
      'CREATE TABLE public.t (a int);',
      'COMMENT ON SCHEMA public IS \'\';',
      "SELECT pg_catalog.setval('s', 1, true);",
      ';',
    ]) {
      expect(action(sql), sql).toBe('keep');
    }
  });

  it('decides early only what the end of the statement cannot change', () => {
    const statements = [
      'CREATE DATABASE x;',
      'CREATE USER MAPPING FOR x SERVER s;',
      'CREATE USER x;',
      'CREATE EXTENSION pg_trgm;',
      'CREATE SCHEMA public;',
      'CREATE TABLE t (a int);',
      'ALTER TABLE t OWNER TO x;',
      'ALTER TABLE t RENAME owner TO x;',
      'GRANT SELECT ON TABLE t TO nobody;',
      'GRANT x TO y;',
      "SELECT pg_catalog.set_config('search_path', '', false);",
      "SELECT pg_catalog.setval('s', 1);",
      "SECURITY LABEL ON DATABASE d IS 'x';",
      'UPDATE pg_catalog.pg_database SET x = 1;',
      'COMMENT ON TABLE t IS NULL;',
    ];
    for (const sql of statements) {
      const tokens = tokensOf(sql);
      const final = judge(sql).action;
      for (let k = 0; k <= tokens.length; k++) {
        const early = judgeStatement(tokens.slice(0, k), context, { complete: false });
        if (early.action === 'keep' || early.action === 'skip') expect(early.action, `${sql} after ${k} tokens`).toBe(final === 'rewrite' ? 'keep' : final);
      }
    }
  });
});

describe('isPreambleStatement', () => {
  it.each([
    ['SET statement_timeout = 0;', true],
    ["SELECT pg_catalog.set_config('search_path', '', false);", true],
    ['DROP TABLE IF EXISTS public.t;', true],
    ['ALTER TABLE IF EXISTS ONLY public.assets DROP CONSTRAINT IF EXISTS assets_pkey;', true],
    ['CREATE SCHEMA x;', true],
    ['ALTER SCHEMA public OWNER TO postgres;', true],
    ["COMMENT ON SCHEMA public IS '';", true],
    ['CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;', true],
    ["COMMENT ON EXTENSION pg_trgm IS 'x';", true],
    ['CREATE ROLE x;', true],
    ['GRANT a TO b;', true],
    ['CREATE DATABASE x;', true],
    ['CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;', false],
    ['CREATE TABLE t (a int);', false],
    ['ALTER TABLE t OWNER TO x;', false],
    ['COPY t FROM stdin;', false],
    ["SELECT pg_catalog.setval('s', 1);", false],
  ])('%s → %s', (sql, expected) => {
    expect(isPreambleStatement(tokensOf(sql))).toBe(expected);
  });
});

describe('names', () => {
  it('decodes \\XXXX and \\+XXXXXX escapes, a doubled escape and surrogate pairs', () => {
    expect(decodeUnicodeEscapes('d\\0061t\\+000061')).toBe('data');
    expect(decodeUnicodeEscapes('a\\\\b')).toBe('a\\b');
    expect(decodeUnicodeEscapes('!D83D!DE00', '!')).toBe('😀');
  });

  it('cuts names to 63 bytes, as the server does', () => {
    const long = 'r'.repeat(70);
    expect(tokensOf(`GRANT SELECT ON t TO ${long};`).slice(-1)).toEqual([{ kind: 'word', text: 'r'.repeat(63) }]);
  });
});
