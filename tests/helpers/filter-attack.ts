import { Readable } from 'node:stream';
import { createRestoreFilter } from '../../src/lib/server/dump-filter';

/** The restore filter as a one-transaction restore runs it (freezeCopies on). */
export const FILTER_OPTIONS = { databaseName: 'immich', existingRoles: new Set(['postgres']), allowedExtensions: new Set(['pgcrypto']), freezeCopies: true };

export const latin1 = (text: string) => Buffer.from(text, 'latin1');

/** The filter's output for `input`, fed whole or one byte at a time; rejects with its refusal. */
export async function filtered(input: Buffer, options: { bytewise?: boolean } = {}): Promise<Buffer> {
  const filter = createRestoreFilter(FILTER_OPTIONS);
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

/** What the filter makes of a dump: its output, or its refusal. */
export async function outcome(input: Buffer, bytewise: boolean): Promise<{ out: string } | { refused: string }> {
  try {
    return { out: (await filtered(input, { bytewise })).toString('latin1') };
  } catch (error) {
    return { refused: (error as Error).message };
  }
}
