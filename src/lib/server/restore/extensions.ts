import { createReadStream } from 'node:fs';
import { PassThrough } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { scanDumpHead } from '../dump-filter';
import type { DumpExtension, RestoreRepository } from '../repositories/restore.repository';
import { badRequest } from '../errors';
import type { ConnectionOptions } from '../db/connection';
import type { ValidatedDump } from './validate-backup';

/**
 * Extensions a restore may create: what this app's schema uses, and the reference server's. A
 * dump does not create extensions itself (it runs unprivileged); the app does, before the load.
 */
export const ALLOWED_EXTENSIONS: ReadonlySet<string> = new Set([
  'vector',
  'vchord',
  'vectors',
  'cube',
  'earthdistance',
  'pg_trgm',
  'unaccent',
  'uuid-ossp',
  'pgcrypto',
  'plpgsql',
]);

/**
 * Before anything changes: the extensions the dump asks for (read from its head, where pg_dump
 * writes them), each allowed and installed on the database server, or a 400 naming it.
 * plpgsql is in every database already.
 */
export async function checkExtensions(
  repository: RestoreRepository,
  connection: ConnectionOptions,
  dump: ValidatedDump,
): Promise<DumpExtension[]> {
  const input = createReadStream(dump.path, { highWaterMark: 256 * 1024 });
  const text = dump.compressed ? input.pipe(createGunzip()) : input.pipe(new PassThrough());
  let found: DumpExtension[];
  try {
    ({ extensions: found } = await scanDumpHead(text, {
      databaseName: connection.database,
      existingRoles: new Set(),
      allowedExtensions: ALLOWED_EXTENSIONS,
    }));
  } catch (error) {
    throw badRequest(`${dump.filename} cannot be restored: ${(error as Error).message}`);
  } finally {
    input.destroy();
    text.destroy();
  }
  const needed = found.filter((extension) => extension.name !== 'plpgsql');
  if (!needed.length) return [];
  const available = await repository.availableExtensions(connection);
  const missing = needed.filter((extension) => !available.has(extension.name)).map((extension) => `"${extension.name}"`);
  if (missing.length) {
    throw badRequest(
      `${dump.filename} needs the PostgreSQL extension${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, not installed on the database server. ` +
        'Install it there (for example the pgvector or VectorChord package of your PostgreSQL version), then restore again.',
    );
  }
  return needed;
}

/**
 * After the load: the database holds only allowed extensions. A dump cannot create one itself
 * with CREATE EXTENSION (the filter leaves those out), but a DO block can create a trusted one as
 * the database's owner, and its script runs as a superuser. Fails the restore, naming them.
 */
export async function checkInstalledExtensions(repository: RestoreRepository, connection: ConnectionOptions, database: string): Promise<void> {
  const unexpected = (await repository.installedExtensions(connection, database)).filter((name) => !ALLOWED_EXTENSIONS.has(name));
  if (unexpected.length) {
    throw new Error(`the dump created the PostgreSQL extension${unexpected.length > 1 ? 's' : ''} ${unexpected.map((name) => `"${name}"`).join(', ')}, which Lifeboat does not allow`);
  }
}
