import { isAbsolute, relative, resolve } from 'node:path';
import type { AssetRepository } from '../repositories/asset.repository';
import type { StorageRepository } from '../repositories/storage.repository';

export class AssetService {
  constructor(
    private readonly uploadLocation: string,
    private readonly assets: AssetRepository,
    private readonly storage: StorageRepository,
  ) {}

  /** Paths are stored relative to UPLOAD_LOCATION, so a restored library works from a new location. */
  resolvePath(stored: string): string | null {
    const full = resolve(this.uploadLocation, stored);
    const rel = relative(this.uploadLocation, full);
    return rel.startsWith('..') || isAbsolute(rel) ? null : full;
  }

  /** One page of the owner's timeline, newest first, with the total count. */
  async timeline(ownerId: string, page: number, pageSize: number) {
    const [count, rows] = await Promise.all([this.assets.countByOwner(ownerId), this.assets.listByOwner(ownerId, pageSize, page * pageSize)]);
    return {
      count,
      assets: rows.map((a) => ({ id: a.id, type: a.type, name: a.original_file_name, createdAt: a.file_created_at.toISOString(), hasThumbnail: !!a.thumbnail_path })),
    };
  }

  async thumbnailFile(id: string, ownerId: string) {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return null;
    const asset = await this.assets.getForOwner(id, ownerId);
    const path = asset?.thumbnail_path ? this.resolvePath(asset.thumbnail_path) : null;
    if (!path || !(await this.storage.exists(path))) return null;
    return { stream: this.storage.createReadStream(path) };
  }
}
