import type { Database } from '../db/database';

export interface DemoAssetFiles {
  id: string;
  type: 'IMAGE' | 'VIDEO';
  original_path: string;
  thumbnail_path: string;
  preview_path: string;
  encoded_video_path: string | null;
}

export interface AlbumSlot {
  ownerId: string;
  albumId: string;
  slot: number;
}

/** The demo generator's SQL: rows are made inside PostgreSQL, so millions take minutes. */
export class DemoRepository {
  constructor(private readonly db: Database) {}

  async assetCount(): Promise<number> {
    const { rows } = await this.db.query<{ count: string }>('SELECT count(*) FROM assets');
    return Number(rows[0].count);
  }

  async databaseBytes(): Promise<number> {
    const { rows } = await this.db.query<{ size: string }>('SELECT pg_database_size(current_database()) AS size');
    return Number(rows[0].size);
  }

  /** The owner's album with this name, created when missing. */
  async album(ownerId: string, name: string, description: string): Promise<string> {
    const existing = await this.db.query<{ id: string }>('SELECT id FROM albums WHERE owner_id = $1 AND album_name = $2 ORDER BY created_at LIMIT 1', [ownerId, name]);
    if (existing.rows[0]) return existing.rows[0].id;
    const { rows } = await this.db.query<{ id: string }>('INSERT INTO albums (owner_id, album_name, description) VALUES ($1, $2, $3) RETURNING id', [ownerId, name, description]);
    return rows[0].id;
  }

  /**
   * Inserts assets numbered first..last, spread round-robin over the owners, every tenth
   * of each owner's a VIDEO, with paths relative to UPLOAD_LOCATION laid out as the reference does
   * (upload/<user>/<2 hex>/<2 hex>/<id>.jpg), a unique sha1 checksum, and about 15% of them
   * in one of their owner's albums. Returns the paths only when the caller writes the files.
   */
  async insertAssets(range: { first: number; last: number }, owners: string[], albums: AlbumSlot[], albumsPerOwner: number, withPaths: boolean): Promise<{ count: number; rows: DemoAssetFiles[] }> {
    const sql = `
      WITH batch AS (
        SELECT id, n, owner_id, type,
               substr(id::text, 1, 2) || '/' || substr(id::text, 3, 2) || '/' || id::text AS tail,
               CASE type WHEN 'VIDEO' THEN '.mp4' ELSE '.jpg' END AS ext
        FROM (
          SELECT gen_random_uuid() AS id, n,
                 ($3::uuid[])[1 + n % cardinality($3::uuid[])] AS owner_id,
                 CASE WHEN (n / cardinality($3::uuid[])) % 10 = 9 THEN 'VIDEO' ELSE 'IMAGE' END AS type
          FROM generate_series($1::bigint, $2::bigint) AS n
        ) numbered
      ), inserted AS (
        INSERT INTO assets (id, owner_id, type, original_path, original_file_name, checksum, file_created_at,
                            thumbnail_path, preview_path, encoded_video_path, is_favorite)
        SELECT id, owner_id, type,
               'upload/' || owner_id || '/' || tail || ext,
               CASE type WHEN 'VIDEO' THEN 'VID_' ELSE 'IMG_' END || lpad(n::text, 7, '0') || ext,
               digest(id::text, 'sha1'),
               now() - random() * interval '3650 days',
               'thumbs/' || owner_id || '/' || tail || '-thumbnail.jpeg',
               'thumbs/' || owner_id || '/' || tail || '-preview.jpeg',
               CASE type WHEN 'VIDEO' THEN 'encoded-video/' || owner_id || '/' || tail || '.mp4' END,
               n % 20 = 0
        FROM batch
        RETURNING id, owner_id, type, checksum, original_path, thumbnail_path, preview_path, encoded_video_path
      ), in_albums AS (
        INSERT INTO album_assets (album_id, asset_id)
        SELECT a.album_id, i.id
        FROM inserted i
        JOIN unnest($4::uuid[], $5::uuid[], $6::int[]) AS a(owner_id, album_id, slot)
          ON a.owner_id = i.owner_id AND a.slot = get_byte(i.checksum, 1) % $7::int
        WHERE get_byte(i.checksum, 0) < 38
      )
      ${withPaths ? 'SELECT id, type, original_path, thumbnail_path, preview_path, encoded_video_path FROM inserted' : 'SELECT count(*)::int AS count FROM inserted'}`;
    const { rows } = await this.db.query(sql, [
      range.first,
      range.last,
      owners,
      albums.map((a) => a.ownerId),
      albums.map((a) => a.albumId),
      albums.map((a) => a.slot),
      albumsPerOwner,
    ]);
    return withPaths ? { count: rows.length, rows: rows as DemoAssetFiles[] } : { count: rows[0].count as number, rows: [] };
  }

  async analyze(): Promise<void> {
    await this.db.query('ANALYZE assets, albums, album_assets');
  }

  async counts(): Promise<{ assets: number; videos: number; albums: number; albumAssets: number }> {
    const { rows } = await this.db.query<{ assets: number; videos: number; albums: number; album_assets: number }>(
      `SELECT (SELECT count(*) FROM assets)::int AS assets,
              (SELECT count(*) FROM assets WHERE type = 'VIDEO')::int AS videos,
              (SELECT count(*) FROM albums)::int AS albums,
              (SELECT count(*) FROM album_assets)::int AS album_assets`,
    );
    return { assets: rows[0].assets, videos: rows[0].videos, albums: rows[0].albums, albumAssets: rows[0].album_assets };
  }
}
