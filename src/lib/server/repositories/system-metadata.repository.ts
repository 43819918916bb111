import type { Database } from '../db/database';

export class SystemMetadataRepository {
  constructor(private readonly db: Database) {}

  async get<T>(key: string): Promise<T | null> {
    const { rows } = await this.db.query<{ value: T }>('SELECT value FROM system_metadata WHERE key = $1', [key]);
    return rows[0]?.value ?? null;
  }

  async set<T>(key: string, value: T): Promise<void> {
    await this.db.query(
      'INSERT INTO system_metadata (key, value) VALUES ($1, $2::jsonb) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value',
      [key, JSON.stringify(value)],
    );
  }
}
