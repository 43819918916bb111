import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { createRestoreFilter } from '../../src/lib/server/dump-filter';
import { pgTool } from '../restore-helpers';
import { createDatabase, dropDatabase, testCluster, withClient } from './pg';

/** The restore filter as a one-transaction restore runs it (freezeCopies on). */
export const FILTER_OPTIONS = { databaseName: 'immich', existingRoles: new Set(['postgres']), allowedExtensions: new Set(['pgcrypto']), freezeCopies: true };

export const latin1 = (text: string) => Buffer.from(text, 'latin1');

/** The filter's output for `input`, fed whole, one byte at a time or in chunks of `chunkSize`; rejects with its refusal. */
export async function filtered(input: Buffer, options: { bytewise?: boolean; chunkSize?: number } = {}): Promise<Buffer> {
  const filter = createRestoreFilter(FILTER_OPTIONS);
  const chunks: Buffer[] = [];
  filter.on('data', (chunk: Buffer) => chunks.push(chunk));
  const size = options.bytewise ? 1 : (options.chunkSize ?? input.length);
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += size) parts.push(input.subarray(i, i + size));
  const source = Readable.from(parts);
  await new Promise<void>((resolve, reject) => {
    filter.on('end', resolve);
    filter.on('error', reject);
    source.pipe(filter);
  });
  return Buffer.concat(chunks);
}

/** What the filter makes of a dump: its output, or its refusal. */
export async function outcome(input: Buffer, chunking: boolean | number): Promise<{ out: string } | { refused: string }> {
  try {
    return { out: (await filtered(input, typeof chunking === 'number' ? { chunkSize: chunking } : { bytewise: chunking })).toString('latin1') };
  } catch (error) {
    return { refused: (error as Error).message };
  }
}

/**
 * `input` fed to real psql in restricted mode, in one transaction, as the owner of a new database
 * (what a restore's unprivileged role is): its exit status and error, and the tables left in public
 * afterwards (null for none). `cleanup`, run last to first, drops what it made.
 */
export async function psqlAsOwner(
  input: Buffer,
  cleanup: Array<() => Promise<unknown>>,
): Promise<{ status: number | null; stderr: string; tables: string[] | null; database: string; role: string }> {
  const database = await createDatabase('attack');
  const role = `${database}_loader`;
  // Run in reverse: what the role made in the database, the database, then its owner.
  cleanup.push(
    () => withClient('postgres', (client) => client.query(`DROP ROLE IF EXISTS ${role}`)),
    () => withClient(database, (client) => client.query(`DROP OWNED BY ${role}`)).catch(() => undefined).then(() => dropDatabase(database)),
  );
  await withClient('postgres', async (client) => {
    await client.query(`CREATE ROLE ${role} LOGIN`);
    await client.query(`ALTER DATABASE ${database} OWNER TO ${role}`);
  });
  const { host, port } = testCluster();
  const psql = spawnSync(pgTool('psql'), ['-X', '-q', '-h', host, '-p', String(port), '-U', role, '-d', database, '-v', 'ON_ERROR_STOP=1', '-f', '-'], {
    input: Buffer.concat([latin1('\\restrict lifeboatattacktest\nBEGIN;\n'), input, latin1('\nCOMMIT;\n')]),
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const { tables } = await withClient(database, async (client) => (await client.query(`SELECT array_agg(relname::text ORDER BY relname) AS tables FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'`)).rows[0]);
  return { status: psql.status, stderr: psql.stderr.toString(), tables, database, role };
}
