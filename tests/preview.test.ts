import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setInstance } from '../src/lib/server/instance';
import { copyField } from '../src/lib/server/backup/dump-stats';
import { libraryKey } from '../src/lib/server/services/consistency.service';
import { PathKeySet, PathKeyer } from '../src/lib/server/services/preview.service';
import type { RestorePreview } from '../src/lib/shared/types';
import { GET as previewGET } from '../src/routes/api/admin/database-backups/[filename]/preview/+server';
import { rowCounts, seedLibrary } from './helpers/backup-seed';
import { startInstance, type TestInstance } from './helpers/pg';

let instance: TestInstance;
let backup: string;
/** What the database held when the backup was made. */
let source: { tables: Record<string, number>; users: number; admins: string[]; paths: string[] };

function place(relativePath: string): void {
  const path = join(instance.uploadLocation, relativePath);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, 'x');
}

const admin = { user: { id: 'a', email: 'admin@example.com', name: 'A', isAdmin: true }, maintenanceAdmin: false };
const nonAdmin = { user: { id: 'u', email: 'user@example.com', name: 'U', isAdmin: false }, maintenanceAdmin: false };

async function callPreview(locals: unknown, filename: string): Promise<Response> {
  try {
    return await previewGET({ locals, params: { filename } } as never);
  } catch (thrown) {
    // error(403, …) from the guard is thrown, as SvelteKit does.
    const status = (thrown as { status?: number }).status;
    if (typeof status === 'number') return new Response(null, { status });
    throw thrown;
  }
}

beforeAll(async () => {
  instance = await startInstance();
  setInstance(instance.app);
  const { db } = instance.app;
  await db.withClient(async (client) => {
    await seedLibrary(client as never, { users: 4, assetsPerUser: 30 });
    // A second admin, a deleted admin (not counted), paths written the reference's other ways.
    await client.query(`INSERT INTO users (email, name, is_admin) VALUES ('second-admin@example.com', 'Second', true)`);
    await client.query(`INSERT INTO users (email, name, is_admin, deleted_at) VALUES ('gone-admin@example.com', 'Gone', true, now())`);
    await client.query(
      `INSERT INTO assets (owner_id, type, original_path, original_file_name, checksum, file_created_at, preview_path, encoded_video_path)
       SELECT id, 'VIDEO', $1, 'v.mp4', '\\x01', now(), '/usr/src/app/upload/thumbs/x/p.jpg', 'encoded-video/x/v.mp4' FROM users WHERE email = 'user1@example.com'`,
      [join(instance.uploadLocation, 'upload/x/abs.mp4')],
    );
  });
  source = await db.withClient(async (client) => {
    const counts = await rowCounts(client as never);
    const users = await client.query(`SELECT email, is_admin FROM users WHERE deleted_at IS NULL`);
    const paths = await client.query<{ p: string }>(
      `SELECT DISTINCT p FROM assets, unnest(ARRAY[original_path, thumbnail_path, preview_path, encoded_video_path]) p WHERE p IS NOT NULL ORDER BY p`,
    );
    return {
      tables: Object.fromEntries(Object.entries(counts).map(([table, n]) => [`public.${table}`, n])),
      users: users.rows.length,
      admins: users.rows.filter((row) => row.is_admin).map((row) => row.email).sort(),
      paths: paths.rows.map((row) => row.p),
    };
  });
  ({ filename: backup } = await instance.app.backups.createBackup());
  // The instance moves on after the backup: the preview shows both sides.
  await db.query(`INSERT INTO users (email, name) VALUES ('later@example.com', 'Later')`);
  await db.query(`DELETE FROM albums WHERE ctid IN (SELECT ctid FROM albums LIMIT 1)`);
});

afterAll(async () => {
  await instance?.close();
});

describe('restore preview', () => {
  let first: RestorePreview;

  it('counts what the database held when the backup was made, and the files it refers to', async () => {
    // 10 of the referenced files on disk (one given by an absolute path inside UPLOAD_LOCATION, one under the reference's media folder), 3 others.
    const relative = source.paths.filter((p) => !p.startsWith('/')).slice(0, 8);
    for (const path of relative) place(path);
    place('upload/x/abs.mp4');
    place('thumbs/x/p.jpg');
    for (const path of ['upload/stray/one.jpg', 'library/admin/two.jpg', 'profile/three.png']) place(path);
    // Never library files: backups (the backup itself), the app's state, the markers.
    place('.lifeboat/not-a-photo.jpg');

    first = await instance.app.preview.preview(backup);

    expect(first.cached).toBe(false);
    expect(first.complete).toBe(true);
    expect(first.doubt).toBeNull();
    expect(first.backup.tables).toEqual(source.tables);
    expect(first.backup.users).toEqual({ count: source.users, admins: source.admins });
    expect(first.backup.users.admins).not.toContain('gone-admin@example.com');
    expect(first.backup.assets).toBe(source.tables['public.assets']);
    expect(first.backup.albums).toBe(source.tables['public.albums']);
    expect(first.backup.version).toBe('1.1.0');
    expect(first.backup.date).not.toBeNull();
    expect(first.files).toEqual({ referenced: source.paths.length, present: 10, missing: source.paths.length - 10, untracked: 3 });

    // The instance now: one user more, one album fewer.
    expect(first.current?.users.count).toBe(source.users + 1);
    expect(first.current?.albums).toBe(source.tables['public.albums'] - 1);
    expect(first.current?.tables['public.assets']).toBe(source.tables['public.assets']);
  });

  it('reads the dump once: the second preview comes from the manifest, the files are counted again', async () => {
    await instance.app.preview.idle();
    const manifestPath = instance.app.backups.manifests.path(backup);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    expect(manifest.preview).toMatchObject({ sha256: manifest.sha256, referenced: source.paths.length });
    // Marked, so an answer read from the dump again would not carry it.
    manifest.preview.backup.users.admins = [...manifest.preview.backup.users.admins, 'from-the-cache@example.com'];
    writeFileSync(manifestPath, JSON.stringify(manifest));
    place('upload/stray/four.jpg');

    const second = await instance.app.preview.preview(backup);

    expect(second.cached).toBe(true);
    expect(second.backup.users.admins).toContain('from-the-cache@example.com');
    expect(second.backup.tables).toEqual(first.backup.tables);
    expect(second.files).toEqual({ ...first.files, untracked: first.files.untracked + 1 });
  });

  it('a backup without a manifest is read each time, and not cached', async () => {
    const copy = `copy-${backup}`;
    writeFileSync(join(instance.app.backups.backupsFolder, copy), readFileSync(join(instance.app.backups.backupsFolder, backup)));
    const a = await instance.app.preview.preview(copy);
    const b = await instance.app.preview.preview(copy);
    expect([a.cached, b.cached]).toEqual([false, false]);
    expect(b.backup.tables).toEqual(source.tables);
  });

  it('GET /api/admin/database-backups/{filename}/preview: admin only, names checked', async () => {
    const ok = await callPreview(admin, backup);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as RestorePreview).backup.tables).toEqual(source.tables);
    expect((await callPreview(nonAdmin, backup)).status).toBe(403);
    expect((await callPreview({ user: null, maintenanceAdmin: false }, backup)).status).toBe(401);
    expect((await callPreview(admin, '..%2Fsecrets.sql')).status).toBe(400);
    expect((await callPreview(admin, '../outside.sql.gz')).status).toBe(400);
    expect((await callPreview(admin, 'nothing-here.sql.gz')).status).toBe(404);
  });
});

describe('path keys', () => {
  it('a path hashed from the dump\'s bytes is the same key as the path compared as text', () => {
    const root = '/srv/library';
    // As COPY writes them: escapes in, absolute and relative, clean and not.
    const stored = [
      'upload/u1/a.jpg',
      '/srv/library/upload/u1/b.jpg',
      '/usr/src/app/upload/thumbs/u1/c.webp',
      '/data/encoded-video/u1/d.mp4',
      './upload/u1/e.jpg',
      'upload//u1/f.jpg',
      'upload/u1/../u2/g.jpg',
      '/srv/library//upload/h.jpg',
      'upload/u1/tab\\there.jpg',
      'upload/u1/ünïcødé.jpg',
      '/elsewhere/i.jpg',
      '../outside.jpg',
    ];
    const set = new PathKeySet();
    const keyer = new PathKeyer(root);
    for (const raw of [...stored, ...stored]) {
      const line = Buffer.from(`x\t${raw}\ty`, 'utf8');
      keyer.add(set, line, 2, 2 + Buffer.byteLength(raw));
    }
    const keys = new Set(stored.map((raw) => libraryKey(copyField(raw)!, root)));
    expect(set.size).toBe(keys.size);
    for (const key of keys) expect(set.hasPath(key), key).toBe(true);
    expect(set.hasPath('upload/u1/zzz.jpg')).toBe(false);
    // The cache form answers the same.
    const again = PathKeySet.fromBytes(Buffer.from(set.toBytes()));
    for (const key of keys) expect(again.hasPath(key), key).toBe(true);
    expect(again.size).toBe(keys.size);
  });
});
