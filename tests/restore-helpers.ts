import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { QueryResult, QueryResultRow } from 'pg';
import type { Lifeboat } from '../src/lib/server/app';
import type { MaintenanceStatus } from '../src/lib/shared/types';

/** The app's Database or a plain pg client. */
interface Queryable {
  query<R extends QueryResultRow = any>(text: string, params?: any[]): Promise<QueryResult<R>>;
}

/** Users, one admin among them, and `assets` assets with long paths (so a dump is well past its 64 KiB head). */
export async function seed(db: Queryable, options: { assets?: number; admin?: boolean; tag?: string } = {}): Promise<void> {
  const tag = options.tag ?? 'seed';
  await db.query(
    `INSERT INTO users (email, name, password, is_admin, storage_label) VALUES
       ($1, 'Ada Admin', 'x', $4, $5), ($2, 'Bob', 'x', false, NULL), ($3, 'Cy', 'x', false, NULL)`,
    [`admin-${tag}@example.com`, `bob-${tag}@example.com`, `cy-${tag}@example.com`, options.admin ?? true, `admin-${tag}`],
  );
  await db.query(
    `INSERT INTO assets (owner_id, type, original_path, original_file_name, checksum, file_created_at)
     SELECT (SELECT id FROM users WHERE email = $2), CASE WHEN g % 10 = 0 THEN 'VIDEO' ELSE 'IMAGE' END,
            '/data/upload/' || $3 || '/' || g || '-' || md5(g::text) || md5($3 || g) || '.jpg', 'IMG_' || g || '.jpg',
            decode(md5($3 || g), 'hex'), now() - g * interval '1 hour'
     FROM generate_series(1, $1::int) g`,
    [options.assets ?? 50, `admin-${tag}@example.com`, tag],
  );
}

/** What the tests compare: who exists and exactly which assets. */
export async function snapshot(db: Queryable): Promise<{ users: string[]; assets: number; digest: string }> {
  const users = await db.query<{ email: string }>('SELECT email FROM users ORDER BY email');
  const assets = await db.query<{ count: string; digest: string }>("SELECT count(*) AS count, md5(coalesce(string_agg(original_path, ',' ORDER BY original_path), '')) AS digest FROM assets");
  return { users: users.rows.map((row) => row.email), assets: Number(assets.rows[0].count), digest: assets.rows[0].digest };
}

/** Changes that a restore must undo. */
export async function changeData(db: Queryable): Promise<void> {
  await db.query("INSERT INTO users (email, name) VALUES ('intruder@example.com', 'Added after the backup')");
  await db.query('DELETE FROM assets WHERE ctid IN (SELECT ctid FROM assets ORDER BY original_path LIMIT 7)');
}

/** Rewrites a gzipped dump's text and stores it under a new name in the backups folder. */
export function editDump(app: Lifeboat, source: string, target: string, edit: (sql: string) => string): string {
  const folder = app.backups.backupsFolder;
  const sql = gunzipSync(readFileSync(join(folder, source))).toString('utf8');
  writeFileSync(join(folder, target), gzipSync(Buffer.from(edit(sql))));
  return target;
}

/** Inserts text before the dump's closing comment (so the dump still ends like a complete one). */
export function beforeEnd(sql: string, text: string): string {
  const at = sql.lastIndexOf('--\n-- PostgreSQL database dump complete');
  if (at < 0) throw new Error('not a complete pg_dump');
  return `${sql.slice(0, at)}${text}\n${sql.slice(at)}`;
}

export function pgTool(name: string): string {
  const bin = execFileSync('ls', ['-d', '/usr/lib/postgresql/15/bin']).toString().trim();
  return join(bin, name);
}

/** Resolves once the restore finished (done, or error). */
export function finished(app: Lifeboat): Promise<MaintenanceStatus> {
  return new Promise((resolve) => {
    const check = (status: MaintenanceStatus) => {
      if (status.task === 'done' || status.task === 'error') {
        unsubscribe();
        resolve(status);
      }
    };
    const unsubscribe = app.maintenance.subscribe(check);
    if (!app.restore.running) check(app.maintenance.status);
  });
}
