import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createRestoreFilter } from '../src/lib/server/dump-filter';
import { createDatabase, dropDatabase, testCluster, withClient } from './helpers/pg';
import { pgTool } from './restore-helpers';

/**
 * Second look at the freezeCopies rewrite (fixed in 831dd9c). The rewrite itself now holds: it only
 * appends to pg_dump's exact ` FROM stdin;` when the lexer already takes rows to follow, and an
 * option more can only add an error, which PostgreSQL raises after psql has entered COPY mode (so
 * psql still reads the rows as rows). What does not hold is the lexer it relies on: below are
 * inputs where psql runs as a statement a COMMIT the filter's lexer reads as part of a string (or
 * COPY rows), so the filter does not leave it out, and part of the one-transaction load commits on
 * its own. None needs freezeCopies; each is a statement boundary psql draws and the lexer does not.
 */

const OPTIONS = { databaseName: 'immich', existingRoles: new Set(['postgres']), allowedExtensions: new Set(['pgcrypto']), freezeCopies: true };

async function filtered(input: Buffer, options: { bytewise?: boolean } = {}): Promise<Buffer> {
  const filter = createRestoreFilter(OPTIONS);
  const chunks: Buffer[] = [];
  filter.on('data', (chunk: Buffer) => chunks.push(chunk));
  const source = options.bytewise ? Readable.from([...input].map((byte) => Buffer.from([byte]))) : Readable.from([input]);
  await new Promise<void>((resolve, reject) => {
    filter.on('end', resolve);
    filter.on('error', reject);
    source.pipe(filter);
  });
  return Buffer.concat(chunks);
}

const latin1 = (text: string) => Buffer.from(text, 'latin1');
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

describe('a COMMIT psql runs as a statement is left out by the filter', () => {
  it.each(CASES)('%s', async (_name, dump) => {
    const input = latin1(dump);
    for (const bytewise of [false, true]) {
      const out = (await filtered(input, { bytewise })).toString('latin1');
      expect(out, JSON.stringify(out)).not.toMatch(/^COMMIT;$/m);
      expect(out.split('\n').length).toBe(dump.split('\n').length);
    }
  });
});

describe('through psql', () => {
  const databases: string[] = [];
  const roles: string[] = [];
  afterAll(async () => {
    for (const database of databases) await dropDatabase(database);
    for (const role of roles) await withClient('postgres', (client) => client.query(`DROP ROLE IF EXISTS ${role}`));
  });

  it('\\; hides a COMMIT: psql, restricted, as an unprivileged role, in one transaction, a failing dump leaves nothing behind', async () => {
    const database = await createDatabase('freeze2');
    databases.push(database);
    const role = `${database}_loader`;
    roles.push(role);
    await withClient('postgres', async (client) => {
      await client.query(`CREATE ROLE ${role} LOGIN`);
      await client.query(`ALTER DATABASE ${database} OWNER TO ${role}`);
    });
    const out = await filtered(latin1(BACKSLASH_SEMICOLON));
    const { host, port } = testCluster();
    const psql = spawnSync(pgTool('psql'), ['-X', '-q', '-h', host, '-p', String(port), '-U', role, '-d', database, '-v', 'ON_ERROR_STOP=1', '-f', '-'], {
      input: Buffer.concat([latin1(`\\restrict lifeboatfreezetest\nBEGIN; SET client_min_messages = warning; SET backend_flush_after = '2MB';\n`), out, latin1('\nCOMMIT;\n')]),
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    const stderr = psql.stderr.toString();
    expect(psql.status, stderr).not.toBe(0);
    const left = await withClient(database, async (client) => {
      const { rows } = await client.query(
        `SELECT (SELECT array_agg(relname::text ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r') AS tables`,
      );
      return rows[0];
    });
    expect(left, `psql said:\n${stderr}`).toEqual({ tables: null });
  });
});
