import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_ADMIN, DEMO_USER_PASSWORD, fillDemoLibrary, type DemoProgress } from '../src/lib/server/demo/demo-library';
import { mosaicJpeg, pcmMp4 } from '../src/lib/server/demo/demo-media';
import { startInstance, withClient, type TestInstance } from './helpers/pg';

interface AssetRow {
  id: string;
  owner_id: string;
  type: 'IMAGE' | 'VIDEO';
  original_path: string;
  thumbnail_path: string;
  preview_path: string;
  encoded_video_path: string | null;
  checksum: Buffer;
}

/** Top-level ISO BMFF boxes: type and size, which must add up to the whole file. */
function mp4Boxes(bytes: Buffer): string[] {
  const types: string[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const size = bytes.readUInt32BE(offset);
    expect(size).toBeGreaterThanOrEqual(8);
    types.push(bytes.toString('latin1', offset + 4, offset + 8));
    offset += size;
  }
  expect(offset).toBe(bytes.length);
  return types;
}

/** Width and height from a baseline JPEG's SOF0 segment. */
function jpegSize(bytes: Buffer): { width: number; height: number } {
  expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
  expect(bytes.subarray(-2)).toEqual(Buffer.from([0xff, 0xd9]));
  let offset = 2;
  while (offset < bytes.length) {
    const marker = bytes.readUInt16BE(offset);
    if (marker === 0xffc0) return { height: bytes.readUInt16BE(offset + 5), width: bytes.readUInt16BE(offset + 7) };
    offset += 2 + bytes.readUInt16BE(offset + 2);
  }
  throw new Error('no SOF0 segment');
}

describe('demo media', () => {
  it('makes baseline JPEGs of the asked size', () => {
    const paint = () => [200, 40, 90] as [number, number, number];
    expect(jpegSize(mosaicJpeg(320, 240, paint))).toEqual({ width: 320, height: 240 });
    expect(jpegSize(mosaicJpeg(20, 12, paint))).toEqual({ width: 20, height: 12 });
  });

  it('makes MP4s: ftyp, moov with an avc1 track, then mdat', () => {
    const mp4 = pcmMp4(64, 48, 4, () => [10, 200, 30]);
    expect(mp4Boxes(mp4)).toEqual(['ftyp', 'moov', 'mdat']);
    expect(mp4.includes(Buffer.from('avc1'))).toBe(true);
    expect(mp4.includes(Buffer.from('avcC'))).toBe(true);
  });
});

describe('fillDemoLibrary', () => {
  let instance: TestInstance;
  const query = <R,>(sql: string, params: unknown[] = []) => withClient(instance.database, async (client) => (await client.query(sql, params)).rows as R[]);

  beforeAll(async () => {
    instance = await startInstance();
  });
  afterAll(async () => {
    await instance?.close();
  });

  it('creates the admin (when there is none), users, assets, albums and their files', async () => {
    const progress: DemoProgress[] = [];
    const result = await fillDemoLibrary(instance.app, { users: 3, assets: 400, batchSize: 150, onProgress: (p) => progress.push(p) });

    expect(result.admin).toMatchObject({ email: DEMO_ADMIN.email, created: true });
    expect(result.users.map((u) => u.created)).toEqual([true, true, true]);
    expect(result.assetsAdded).toBe(400);
    expect(result.totals).toMatchObject({ assets: 400, videos: 40, albums: 8 });
    expect(result.totals.albumAssets).toBeGreaterThan(20);
    expect(result.databaseBytes).toBeGreaterThan(1_000_000);
    // Batches report as they go, ending with the whole count.
    const assetSteps = progress.filter((p) => p.phase === 'assets').map((p) => p.assetsDone);
    expect(assetSteps).toEqual([0, 150, 300, 400]);
    expect(progress.at(-1)?.phase).toBe('done');

    // Everyone can sign in; the admin and each user own a share of the assets.
    expect((await instance.app.auth.login({ email: DEMO_ADMIN.email, password: DEMO_ADMIN.password })).user.isAdmin).toBe(true);
    expect((await instance.app.auth.login({ email: result.users[0].email, password: DEMO_USER_PASSWORD })).user.isAdmin).toBe(false);
    const perOwner = await query<{ count: number; videos: number }>("SELECT count(*)::int AS count, (count(*) FILTER (WHERE type = 'VIDEO'))::int AS videos FROM assets GROUP BY owner_id");
    expect(perOwner).toEqual(new Array(4).fill({ count: 100, videos: 10 }));
  });

  it('stores paths relative to UPLOAD_LOCATION in the reference layout, and the files exist', async () => {
    const assets = await query<AssetRow>('SELECT id, owner_id, type, original_path, thumbnail_path, preview_path, encoded_video_path, checksum FROM assets');
    expect(new Set(assets.map((a) => a.checksum.toString('hex'))).size).toBe(assets.length);
    for (const asset of assets) {
      const tail = `${asset.owner_id}/${asset.id.slice(0, 2)}/${asset.id.slice(2, 4)}/${asset.id}`;
      expect(asset.checksum.length).toBe(20);
      expect(asset.original_path).toBe(`upload/${tail}.${asset.type === 'VIDEO' ? 'mp4' : 'jpg'}`);
      expect(asset.thumbnail_path).toBe(`thumbs/${tail}-thumbnail.jpeg`);
      expect(asset.preview_path).toBe(`thumbs/${tail}-preview.jpeg`);
      expect(asset.encoded_video_path).toBe(asset.type === 'VIDEO' ? `encoded-video/${tail}.mp4` : null);
      for (const path of [asset.original_path, asset.thumbnail_path, asset.preview_path, asset.encoded_video_path]) {
        if (path) expect(existsSync(join(instance.uploadLocation, path)), path).toBe(true);
      }
    }
    const video = assets.find((a) => a.type === 'VIDEO')!;
    const photo = assets.find((a) => a.type === 'IMAGE')!;
    expect(mp4Boxes(readFileSync(join(instance.uploadLocation, video.original_path)))).toEqual(['ftyp', 'moov', 'mdat']);
    expect(jpegSize(readFileSync(join(instance.uploadLocation, photo.original_path)))).toEqual({ width: 320, height: 240 });
    expect(jpegSize(readFileSync(join(instance.uploadLocation, video.thumbnail_path)))).toEqual({ width: 160, height: 120 });
    // Hard links to a few sources, so large libraries cost little disk.
    expect(statSync(join(instance.uploadLocation, photo.thumbnail_path)).nlink).toBeGreaterThan(1);

    // The app finds the thumbnail the Photos page shows.
    const thumbnail = await instance.app.assetService.thumbnailFile(photo.id, photo.owner_id);
    expect(thumbnail).not.toBeNull();
    thumbnail!.stream.destroy();
  });

  it('reuses the admin and the demo users on the next run, and --files none writes rows only', async () => {
    const before = new Set((await query<{ id: string }>('SELECT id FROM assets')).map((r) => r.id));
    const result = await fillDemoLibrary(instance.app, { users: 2, assets: 50, files: 'none' });
    expect(result.admin.created).toBe(false);
    expect(result.users.map((u) => u.created)).toEqual([false, false]);
    expect(result.filesWritten).toBe(0);
    expect(result.totals.assets).toBe(450);
    expect(result.totals.albums).toBe(8);
    const added = (await query<AssetRow>('SELECT id, original_path FROM assets')).filter((a) => !before.has(a.id));
    expect(added).toHaveLength(50);
    for (const asset of added) expect(existsSync(join(instance.uploadLocation, asset.original_path))).toBe(false);
  });

  it('stops early once the database reaches the asked size', async () => {
    const result = await fillDemoLibrary(instance.app, { users: 1, assets: 100_000, files: 'none', batchSize: 1000, untilDatabaseBytes: 1 });
    expect(result.assetsAdded).toBe(0);
    const { databaseBytes } = result;
    const grown = await fillDemoLibrary(instance.app, { users: 1, assets: 100_000, files: 'none', batchSize: 1000, untilDatabaseBytes: databaseBytes + 1 });
    expect(grown.assetsAdded).toBeGreaterThanOrEqual(1000);
    expect(grown.assetsAdded).toBeLessThan(100_000);
  });
});
