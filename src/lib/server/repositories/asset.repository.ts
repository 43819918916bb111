import type { Database } from '../db/database';

export interface AssetRow {
  id: string;
  type: 'IMAGE' | 'VIDEO';
  original_file_name: string;
  original_path: string;
  thumbnail_path: string | null;
  file_created_at: Date;
}

export class AssetRepository {
  constructor(private readonly db: Database) {}

  async countByOwner(ownerId: string): Promise<number> {
    const { rows } = await this.db.query<{ count: string }>('SELECT count(*) FROM assets WHERE owner_id = $1 AND deleted_at IS NULL', [ownerId]);
    return Number(rows[0].count);
  }

  async listByOwner(ownerId: string, limit: number, offset: number): Promise<AssetRow[]> {
    const { rows } = await this.db.query<AssetRow>(
      `SELECT id, type, original_file_name, original_path, thumbnail_path, file_created_at FROM assets
       WHERE owner_id = $1 AND deleted_at IS NULL ORDER BY file_created_at DESC, id LIMIT $2 OFFSET $3`,
      [ownerId, limit, offset],
    );
    return rows;
  }

  async getForOwner(id: string, ownerId: string): Promise<AssetRow | undefined> {
    const { rows } = await this.db.query<AssetRow>(
      'SELECT id, type, original_file_name, original_path, thumbnail_path, file_created_at FROM assets WHERE id = $1 AND owner_id = $2',
      [id, ownerId],
    );
    return rows[0];
  }
}
