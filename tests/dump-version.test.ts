import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDumpFileVersion } from '../src/lib/server/backup/dump-version';
import { migrate } from '../src/lib/server/db/migrator';
import { clientToolsFor } from '../src/lib/server/db/pg-binaries';
import { DumpRepository } from '../src/lib/server/repositories/dump.repository';
import { connectionFor, createDatabase, dropDatabase, startInstance, withClient, type TestInstance } from './helpers/pg';

let instance: TestInstance;
let old: string;
beforeAll(async () => {
  instance = await startInstance();
  old = await createDatabase('old');
  await withClient(old, (client) => migrate(client, { upTo: '1.0.0' }));
});
afterAll(async () => {
  await instance?.close();
  if (old) await dropDatabase(old);
});

describe('the version of a backup read from its contents (real pg_dump output)', () => {
  it('lists an upload of this instance\'s own backup as this version, read from the contents; an older schema as older; no schema as unknown', async () => {
    const folder = instance.app.backups.backupsFolder;
    const { filename } = await instance.app.backups.createBackup();
    copyFileSync(join(folder, filename), join(folder, 'uploaded-mine.sql.gz'));
    copyFileSync(join(folder, filename), join(folder, 'copied-by-hand.sql.gz'));

    // A database at schema 1.0.0 (before albums), dumped by pg_dump as a backup is.
    const { pgDump } = await clientToolsFor(await instance.app.db.serverVersion());
    await new DumpRepository().dumpToFile({ pgDump, connection: connectionFor(old), path: join(folder, 'uploaded-old.sql'), compress: false });
    writeFileSync(join(folder, 'uploaded-nothing.sql.gz'), gzipSync('--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = \'UTF8\';\nCREATE TABLE public.notes (id integer);\nCOPY public.notes (id) FROM stdin;\n1\n\\.\n'));

    const byName = Object.fromEntries((await instance.app.backups.listBackups()).map((b) => [b.filename, b]));
    expect(byName[filename]).toMatchObject({ version: '1.1.0', versionSource: 'name' });
    expect(byName['uploaded-mine.sql.gz']).toMatchObject({ kind: 'uploaded', version: '1.1.0', versionSource: 'contents' });
    expect(byName['copied-by-hand.sql.gz']).toMatchObject({ kind: 'other', version: '1.1.0', versionSource: 'contents' });
    expect(byName['uploaded-old.sql']).toMatchObject({ version: '1.0.0', versionSource: 'contents' });
    expect(byName['uploaded-nothing.sql.gz']).toMatchObject({ version: null, versionSource: null });
    // The migrations block comes after the assets' data in pg_dump's order: a real dump must be read that far.
    expect(await readDumpFileVersion(join(folder, 'uploaded-old.sql'), { databaseName: instance.database })).toBe('1.0.0');
    await instance.app.backups.deleteBackups([filename, 'uploaded-mine.sql.gz', 'copied-by-hand.sql.gz', 'uploaded-old.sql', 'uploaded-nothing.sql.gz']);
  });
});
