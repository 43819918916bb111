import { describe, expect, it } from 'vitest';
import { PsqlLexer, type LexerSettings, type Token } from './psql-lexer';

interface Lexed {
  statements: string[];
  metas: string[];
  copies: string[];
  comments: string[];
  tokens: Token[][];
}

/** Lexes the input fed in the given pieces (with the carry the lexer asks for); byte ranges as latin1 strings. */
function lex(input: Buffer | string, pieces?: Buffer[], settings?: LexerSettings): Lexed {
  const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input);
  const result: Lexed = { statements: [], metas: [], copies: [], comments: [], tokens: [] };
  let base = 0;
  let statementAt = -1;
  let metaAt = -1;
  let copyAt = -1;
  const text = (from: number, to: number) => bytes.toString('latin1', from, to);
  const lexer = new PsqlLexer(
    {
      statementStart: (at) => (statementAt = base + at),
      statementEnd: (end, statement) => {
        result.statements.push(text(statementAt, base + end));
        result.tokens.push([...statement.tokens]);
      },
      metaStart: (at) => (metaAt = base + at),
      metaEnd: (end) => result.metas.push(text(metaAt, base + end)),
      copyStart: (at) => (copyAt = base + at),
      copyEnd: (end) => result.copies.push(text(copyAt, base + end)),
      lineComment: (_end, comment) => result.comments.push(comment),
    },
    settings,
  );
  let carry = Buffer.alloc(0);
  for (const piece of pieces ?? [bytes]) {
    const buf = Buffer.concat([carry, piece]);
    const used = lexer.scan(buf, false);
    base += used;
    carry = buf.subarray(used);
  }
  expect(lexer.scan(carry, true)).toBe(carry.length);
  return result;
}

const statements = (input: Buffer | string, settings?: LexerSettings) => lex(input, undefined, settings).statements;
const bytes = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

describe('statement boundaries', () => {
  it('splits at top-level semicolons, ignoring whitespace and -- comments between statements', () => {
    expect(statements('SELECT 1;  -- one\n\nSELECT (2;\n3);\nSELECT 4')).toEqual(['SELECT 1;', 'SELECT (2;\n3);', 'SELECT 4']);
  });

  it.each([
    ["'a;b'", "SELECT 'a;b', 'it''s;';"],
    ['E strings with escaped quotes', "SELECT E'a\\';b', E'c'';d';"],
    ['quoted identifiers', 'SELECT 1 AS "a;""b";'],
    ['U& strings and identifiers', 'SELECT U&\'a;\\0062\', U&"c;d";'],
    ['bit strings', "SELECT B'0;1', X'f;f', N'n;n';"],
    ['dollar quotes', 'SELECT $$a;b$$, $x$c;$y$;d$x$, $_$e;$_$;'],
    ['a tag that only ends inside $junk$a$', 'SELECT $a$ x; $junk$a$;'],
    ['nested block comments', 'SELECT /* a; /* b; */ c; */ 1;'],
    ['a -- comment', 'SELECT 1 -- ;\n;'],
    ['\\; (psql puts a plain ; in the query)', 'SELECT 1 \\; SELECT 2;'],
  ])('does not end a statement inside %s', (_, sql) => {
    expect(statements(`${sql}\nSELECT 9;`)).toEqual([sql, 'SELECT 9;']);
  });

  it('ends a -- comment at a CR, as psql does', () => {
    expect(statements('SELECT 1 -- note\r; SELECT 2;\n')).toEqual(['SELECT 1 -- note\r;', 'SELECT 2;']);
  });

  it('reads $1, a$b$ and $-then-identifier like psql', () => {
    expect(statements('SELECT $1; SELECT a$b$c; SELECT 3;')).toEqual(['SELECT $1;', 'SELECT a$b$c;', 'SELECT 3;']);
    // {dolqfailed}: "$e" is no tag, so e'...' is an E string and \' escapes its quote.
    expect(statements("SELECT $e'\\'; SELECT 2;';")).toEqual(["SELECT $e'\\'; SELECT 2;';"]);
  });

  it("follows psql's BEGIN ... END rule for SQL-standard function bodies", () => {
    const fn = 'CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql\n  BEGIN ATOMIC\n SELECT 1;\n SELECT CASE WHEN a > 0 THEN 1 END;\nEND;';
    const proc = 'create or replace procedure p() begin atomic select 1; end;';
    expect(statements(`${fn}\n${proc}\nSELECT 1; BEGIN; END;`)).toEqual([fn, proc, 'SELECT 1;', 'BEGIN;', 'END;']);
  });

  it('continues a string after a quote, a CR and a quote on the same line (SQL continuation), not across an LF', () => {
    // E'a' CR '\'...: the second part is still an E string, so \' escapes the quote.
    expect(statements("SELECT E'a'\r'\\'; SELECT 1; --';\nSELECT 2;")).toEqual(["SELECT E'a'\r'\\'; SELECT 1; --';", 'SELECT 2;']);
    // psql lexes each line without its LF: the quote on the next line starts a new plain string.
    expect(statements("SELECT E'a'\n'\\'; SELECT 1; --';\n")).toEqual(["SELECT E'a'\n'\\';", 'SELECT 1;']);
  });

  it('reads a backslash in a plain string as an escape only while standard_conforming_strings is off', () => {
    expect(statements("SELECT 'a\\'; SELECT 2; --';")).toEqual(["SELECT 'a\\';", 'SELECT 2;']);
    expect(statements("SELECT 'a\\'; SELECT 2; --';", { standardConformingStrings: false })).toEqual(["SELECT 'a\\'; SELECT 2; --';"]);
  });

  it('applies SET standard_conforming_strings from the next line on, as psql does', () => {
    const sql = "SET standard_conforming_strings = off; SELECT 'a\\'; SELECT 1; --';\nSELECT 'b\\'; SELECT 2; --';\n";
    expect(statements(sql)).toEqual([
      'SET standard_conforming_strings = off;',
      "SELECT 'a\\';",
      'SELECT 1;',
      "SELECT 'b\\'; SELECT 2; --';",
    ]);
    const back = "SET standard_conforming_strings = off;\nSET standard_conforming_strings TO 'on';\nSELECT 'c\\'; SELECT 3;";
    expect(statements(back).slice(2)).toEqual(["SELECT 'c\\';", 'SELECT 3;']);
    expect(statements("RESET ALL;\nSELECT 'c\\'; SELECT 3;", { standardConformingStrings: false }).slice(1)).toHaveLength(2);
  });

  it('reads a backslash after a multibyte UTF-8 character as a backslash', () => {
    const latin1 = (text: string) => Buffer.from(text).toString('latin1');
    const sql = "SELECT E'é\\n', E'é\\'; SELECT 2;';";
    expect(statements(`${sql}\nSELECT 3;`)).toEqual([latin1(sql), 'SELECT 3;']);
  });

  it('hides trailing bytes of SJIS characters from the lexer (0x5C in 表 is no backslash)', () => {
    const hyou = [0x95, 0x5c]; // 表
    const tail = bytes("SELECT E'", hyou, "'; SELECT 2; --';\n");
    expect(statements(Buffer.concat([Buffer.from("SET client_encoding = 'SJIS';\n"), tail])).slice(1)).toEqual([
      `SELECT E'\x95\\';`,
      'SELECT 2;',
    ]);
    // The same bytes in UTF8: \' escapes the quote.
    expect(statements(tail)).toEqual([`SELECT E'\x95\\'; SELECT 2; --';`]);
    // Half-width katakana (0xA1-0xDF) are single bytes in SJIS: the backslash is one.
    const kana = bytes("SELECT E'", [0xb1, 0x5c], "'; SELECT 2; --';\n");
    expect(statements(kana, { clientEncoding: 'Shift_JIS' })).toHaveLength(1);
  });

  it('applies the multibyte rules of GB18030 (4 bytes after a digit), BIG5 and JOHAB (0x8F: 3 bytes)', () => {
    const run = (encoding: string, char: number[]) => statements(bytes("SELECT '", char, "; SELECT 2; --';\n"), { clientEncoding: encoding });
    expect(run('GB18030', [0x81, 0x30, 0x81, 0x27])).toHaveLength(1); // the quote is the 4th byte
    expect(run('GB18030', [0x81, 0x27])).toHaveLength(1);
    expect(run('GB18030', [0x81, 0x41, 0x27])).toHaveLength(2); // 2 bytes: the quote is real
    expect(run('BIG5', [0xa4, 0x27])).toHaveLength(1);
    expect(run('JOHAB', [0x8f, 0x41, 0x27])).toHaveLength(1);
    expect(run('JOHAB', [0x88, 0x41, 0x27])).toHaveLength(2);
    expect(run('UTF8', [0x81, 0x27])).toHaveLength(2);
  });

  it('skips a UTF-8 byte-order mark on the first line', () => {
    const lexed = lex(bytes([0xef, 0xbb, 0xbf], '-- PostgreSQL database cluster dump\nSELECT 1;'));
    expect(lexed.statements).toEqual(['SELECT 1;']);
    expect(lexed.comments).toEqual(['-- PostgreSQL database cluster dump']);
  });
});

describe('backslash commands and comments', () => {
  it('reports backslash commands to the end of their line, outside statements', () => {
    const lexed = lex('\\restrict abc\nSELECT 1;\n\\connect -reuse-previous=on "dbname=\'x\'"\r\n\\unrestrict abc');
    expect(lexed.metas).toEqual(['\\restrict abc', '\\connect -reuse-previous=on "dbname=\'x\'"\r', '\\unrestrict abc']);
    expect(lexed.statements).toEqual(['SELECT 1;']);
  });

  it('reports -- comments that start a line outside statements', () => {
    const lexed = lex('-- one\nSELECT 1 -- two\n;\n  -- three\n-- four');
    expect(lexed.comments).toEqual(['-- one', '-- four']);
  });
});

describe('COPY data', () => {
  it('finds COPY ... FROM stdin by its tokens, whatever tables and columns are called', () => {
    const sql = [
      'COPY program (copy, stdin, program) FROM stdin;',
      '1\t2\t3',
      '\\.',
      'COPY "stdin" (a) FROM STDIN;',
      "x';",
      '\\.',
      'copy copy from stdin;',
      '\\.',
      'COPY public.t (a) FROM stdin WITH (FORMAT text);',
      '\\.',
      'COPY t TO stdout;',
      "COPY t FROM 'stdin';",
      "COPY t FROM PROGRAM 'x';",
      'SELECT 1;',
      '',
    ].join('\n');
    const lexed = lex(sql);
    expect(lexed.copies).toEqual(['1\t2\t3\n\\.\n', "x';\n\\.\n", '\\.\n', '\\.\n']);
    expect(lexed.statements.slice(-4)).toEqual(['COPY t TO stdout;', "COPY t FROM 'stdin';", "COPY t FROM PROGRAM 'x';", 'SELECT 1;']);
  });

  it('ends data only at a line that is exactly \\. (before LF or CRLF), or at the end of input', () => {
    const lexed = lex('COPY t FROM stdin;\n\\.x\n \\.\n\\\\.\n\\.\r\nSELECT 1;\nCOPY t FROM stdin;\r\na\r\n\\.');
    expect(lexed.copies).toEqual(['\\.x\n \\.\n\\\\.\n\\.\r\n', 'a\r\n\\.']);
    expect(lexed.statements).toEqual(['COPY t FROM stdin;', 'SELECT 1;', 'COPY t FROM stdin;']);
  });

  it('starts data on the next line, one block per COPY, and lexes the rest of the COPY line as psql does after the data', () => {
    const lexed = lex("COPY a FROM stdin; COPY b FROM stdin; SELECT 'x\n1\n\\.\n2\n\\.\ny';\n");
    expect(lexed.copies).toEqual(['1\n\\.\n', '2\n\\.\n']);
    expect(lexed.statements).toHaveLength(3);
    expect(lexed.tokens[2].map((t) => t.text)).toEqual(['select', 'x\ny']);
  });
});

describe('tokens', () => {
  it('folds words to lower case, undoes doubled quotes and keeps U& identifiers escaped', () => {
    const [tokens] = lex('ALTER ROLE "Rea""der" SET x = U&"\\0070g" UESCAPE \'!\';').tokens;
    expect(tokens).toEqual([
      { kind: 'word', text: 'alter' },
      { kind: 'word', text: 'role' },
      { kind: 'ident', text: 'Rea"der', unicode: false },
      { kind: 'word', text: 'set' },
      { kind: 'word', text: 'x' },
      { kind: 'op', text: '=' },
      { kind: 'ident', text: '\\0070g', unicode: true },
      { kind: 'word', text: 'uescape' },
      { kind: 'string', text: '!', prefix: '' },
    ]);
  });

  it('keeps parenthesised groups as ( ) and at most 64 tokens', () => {
    const [tokens] = lex(`GRANT SELECT (a, b) ON t TO x${', y'.repeat(100)};`).tokens;
    expect(tokens.slice(0, 6).map((t) => t.text)).toEqual(['grant', 'select', '(', ')', 'on', 't']);
    expect(tokens).toHaveLength(64);
  });
});

describe('chunking', () => {
  const sample = bytes(
    "SET client_encoding = 'UTF8';\r\nSELECT 'é''', E'\\'', \"x\"\"y\", $f$ ; $f$, U&'\\0041' /* a /* b */ */; -- c\n",
    'COPY t (a) FROM stdin;\r\nx\\.\r\n\\.\r\n\\connect db\nCREATE FUNCTION f() BEGIN ATOMIC SELECT 1; END;\nSELECT 1 \\; 2 -',
    "- x\n;SELECT E'a'\r'b';",
  );

  it('gives the same result at every split point and byte by byte', () => {
    const whole = lex(sample);
    expect(whole.statements).toHaveLength(6);
    for (let cut = 1; cut < sample.length; cut++) {
      expect(lex(sample, [sample.subarray(0, cut), sample.subarray(cut)]), `cut at ${cut}`).toEqual(whole);
    }
    const bytewise = Array.from({ length: sample.length }, (_, i) => sample.subarray(i, i + 1));
    expect(lex(sample, bytewise)).toEqual(whole);
  });

  it('survives random input without throwing, and chunking never changes the result', () => {
    const alphabet = bytes(`'"$;\\-/*()\n\r ECUbx&:.${'a'.repeat(3)}01`, [0x81, 0x30, 0xff]);
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let round = 0; round < 200; round++) {
      const input = Buffer.from(Array.from({ length: 200 }, () => alphabet[Math.floor(random() * alphabet.length)]));
      const settings = { clientEncoding: round % 2 ? 'GB18030' : 'UTF8' };
      const whole = lex(input, undefined, settings);
      const cut = 1 + Math.floor(random() * 198);
      expect(lex(input, [input.subarray(0, cut), input.subarray(cut)], settings)).toEqual(whole);
    }
  });
});
