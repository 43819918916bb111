import type pg from 'pg';

/** A few users, assets, albums and sessions, so a restored copy has something to compare. */
export async function seedLibrary(client: pg.Client | pg.PoolClient, options: { users?: number; assetsPerUser?: number } = {}): Promise<void> {
  const users = options.users ?? 3;
  const assets = options.assetsPerUser ?? 40;
  await client.query(
    `INSERT INTO users (email, name, password, is_admin, storage_label)
     SELECT 'user' || i || '@example.com', 'User ' || i, 'x', i = 1, CASE WHEN i = 1 THEN 'admin' END FROM generate_series(1, $1) i`,
    [users],
  );
  await client.query(
    `INSERT INTO assets (owner_id, type, original_path, original_file_name, checksum, file_created_at, thumbnail_path)
     SELECT u.id, CASE WHEN i % 7 = 0 THEN 'VIDEO' ELSE 'IMAGE' END, 'upload/' || u.id || '/' || i || '.jpg', 'IMG_' || i || E'.jpg\\ttab''quote',
            gen_random_bytes(20), now() - i * interval '1 hour', 'thumbs/' || u.id || '/' || i || '.webp'
     FROM users u, generate_series(1, $1) i`,
    [assets],
  );
  await client.query(`INSERT INTO albums (owner_id, album_name, description) SELECT id, 'Album of ' || name, E'line1\\nline2 ünïcødé' FROM users`);
  await client.query(`INSERT INTO album_assets (album_id, asset_id) SELECT al.id, a.id FROM albums al JOIN assets a ON a.owner_id = al.owner_id WHERE a.type = 'IMAGE'`);
  await client.query(`INSERT INTO sessions (token, user_id, expires_at) SELECT md5(id::text), id, now() + interval '1 day' FROM users`);
}

/** Row count of every table in the public schema. */
export async function rowCounts(client: pg.Client | pg.PoolClient): Promise<Record<string, number>> {
  const { rows } = await client.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const counts: Record<string, number> = {};
  for (const { table_name } of rows) {
    const { rows: count } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM public.${client.escapeIdentifier(table_name)}`);
    counts[table_name] = Number(count[0].n);
  }
  return counts;
}
