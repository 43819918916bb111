import { copyFileSync, linkSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Lifeboat } from '../app';
import { hashPassword } from '../services/auth.service';
import { DEMO_PALETTES, gradient, mosaicJpeg, pcmMp4 } from './demo-media';
import { DemoRepository, type AlbumSlot, type DemoAssetFiles } from './demo.repository';

export const DEMO_ADMIN = { email: 'admin@example.com', password: 'admin-password', name: 'Admin' };
export const DEMO_USER_PASSWORD = 'demo-password';
export const demoUserEmail = (i: number) => `demo-user-${i}@example.com`;
const ALBUMS = [
  { name: 'Holidays', description: 'Sun, sea and too many photos of the sea' },
  { name: 'Family', description: 'Birthdays and Sunday lunches' },
];

export interface DemoOptions {
  /** Ordinary users besides the admin (existing demo users are reused). */
  users: number;
  /** Assets to add, spread over the admin and the users. */
  assets: number;
  /** 'none' writes the rows only (benchmarks that need database size, not files). */
  files?: 'all' | 'none';
  /** Stop early once the database has grown to this many bytes. */
  untilDatabaseBytes?: number;
  /** Rows per INSERT statement. */
  batchSize?: number;
  onProgress?: (progress: DemoProgress) => void;
}

export interface DemoProgress {
  phase: 'users' | 'assets' | 'analyze' | 'done';
  assetsDone: number;
  assetsTotal: number;
  filesWritten: number;
  databaseBytes: number;
  elapsedMs: number;
  message?: string;
}

export interface DemoResult {
  admin: { id: string; email: string; created: boolean };
  users: Array<{ id: string; email: string; created: boolean }>;
  assetsAdded: number;
  filesWritten: number;
  totals: { assets: number; videos: number; albums: number; albumAssets: number };
  databaseBytes: number;
  elapsedMs: number;
}

type Kind = 'photo' | 'preview' | 'thumbnail' | 'video';

/**
 * Files are hard links to a few real media files, so a library of 100k assets takes seconds
 * and almost no disk. A link count has a ceiling (65000 on ext4): then a fresh copy takes over.
 */
class LinkedFiles {
  private readonly sources = new Map<string, string>();
  private readonly madeDirs = new Set<string>();
  private readonly media = new Map<string, Buffer>();
  written = 0;

  constructor(private readonly uploadLocation: string) {}

  private bytes(kind: Kind, variant: number): Buffer {
    const key = `${kind}-${variant}`;
    let bytes = this.media.get(key);
    if (!bytes) {
      const paint = gradient(DEMO_PALETTES[variant]);
      bytes = kind === 'video' ? pcmMp4(64, 48, 4, paint) : kind === 'thumbnail' ? mosaicJpeg(160, 120, paint) : mosaicJpeg(320, 240, paint);
      this.media.set(key, bytes);
    }
    return bytes;
  }

  place(relativePath: string, kind: Kind, variant: number): void {
    const target = `${this.uploadLocation}/${relativePath}`;
    const dir = dirname(target);
    if (!this.madeDirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.madeDirs.add(dir);
    }
    const key = `${kind}-${variant}`;
    const source = this.sources.get(key);
    if (source) {
      try {
        linkSync(source, target);
        this.written++;
        return;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EXDEV') {
          copyFileSync(source, target);
          this.written++;
          return;
        }
        // EMLINK: too many links; ENOENT: the source was removed meanwhile. Start a new source.
        if (code !== 'EMLINK' && code !== 'ENOENT') throw error;
      }
    }
    writeFileSync(target, this.bytes(kind, variant));
    this.sources.set(key, target);
    this.written++;
  }

  assetFiles(row: DemoAssetFiles): void {
    const variant = parseInt(row.id.slice(0, 2), 16) % DEMO_PALETTES.length;
    this.place(row.original_path, row.type === 'VIDEO' ? 'video' : 'photo', variant);
    this.place(row.thumbnail_path, 'thumbnail', variant);
    this.place(row.preview_path, 'preview', variant);
    if (row.encoded_video_path) this.place(row.encoded_video_path, 'video', variant);
  }
}

const yieldToEventLoop = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Fills the instance with demo users, assets (about 10% videos), albums and (unless
 * files is 'none') the files on disk, so backups, restores and integrity checks do real work.
 * Reuses the admin when there is one; otherwise creates DEMO_ADMIN.
 */
export async function fillDemoLibrary(app: Lifeboat, options: DemoOptions): Promise<DemoResult> {
  if (app.maintenance.isActive()) throw new Error('The instance is in maintenance mode: end it before adding demo data.');
  if (!Number.isInteger(options.users) || options.users < 0) throw new Error('users must be a whole number, 0 or more');
  if (!Number.isInteger(options.assets) || options.assets < 0) throw new Error('assets must be a whole number, 0 or more');
  const started = Date.now();
  const repo = new DemoRepository(app.db);
  const withFiles = (options.files ?? 'all') === 'all';
  const batchSize = options.batchSize ?? (withFiles ? 5_000 : 25_000);
  const progress = (phase: DemoProgress['phase'], extra: Partial<DemoProgress> = {}) =>
    options.onProgress?.({ phase, assetsDone: 0, assetsTotal: options.assets, filesWritten: files.written, databaseBytes: 0, elapsedMs: Date.now() - started, ...extra });
  const files = new LinkedFiles(app.config.uploadLocation);

  progress('users', { message: 'Creating users' });
  let adminRow = (await app.users.list()).find((user) => user.is_admin);
  const adminCreated = !adminRow;
  if (!adminRow) {
    const created = await app.auth.adminSignUp(DEMO_ADMIN);
    adminRow = (await app.users.getByEmail(created.email))!;
  }
  const admin = { id: adminRow.id, email: adminRow.email, created: adminCreated };
  await app.storage.ensureUserFolders(admin.id, adminRow.storage_label);

  // One scrypt hash for every demo user: hashing is deliberately slow, and they share a password.
  let passwordHash: string | null = null;
  const users: DemoResult['users'] = [];
  for (let i = 1; i <= options.users; i++) {
    const email = demoUserEmail(i);
    let row = await app.users.getByEmail(email);
    const created = !row;
    if (!row) {
      passwordHash ??= await hashPassword(DEMO_USER_PASSWORD);
      row = await app.users.create({ email, name: `Demo User ${i}`, password: passwordHash, isAdmin: false, storageLabel: null });
    }
    await app.storage.ensureUserFolders(row.id, row.storage_label);
    users.push({ id: row.id, email, created });
  }

  const owners = [admin.id, ...users.map((u) => u.id)];
  const albums: AlbumSlot[] = [];
  for (const ownerId of owners) {
    for (const [slot, album] of ALBUMS.entries()) albums.push({ ownerId, slot, albumId: await repo.album(ownerId, album.name, album.description) });
  }

  // Continue the numbering of earlier runs, so file names stay distinct.
  const offset = await repo.assetCount();
  let done = 0;
  let databaseBytes = await repo.databaseBytes();
  progress('assets', { databaseBytes });
  while (done < options.assets) {
    if (options.untilDatabaseBytes && databaseBytes >= options.untilDatabaseBytes) break;
    const count = Math.min(batchSize, options.assets - done);
    const first = offset + done;
    const { count: inserted, rows } = await repo.insertAssets({ first, last: first + count - 1 }, owners, albums, ALBUMS.length, withFiles);
    for (let i = 0; i < rows.length; i++) {
      files.assetFiles(rows[i]);
      if (i % 2000 === 1999) await yieldToEventLoop();
    }
    done += inserted;
    databaseBytes = await repo.databaseBytes();
    progress('assets', { assetsDone: done, databaseBytes });
  }

  progress('analyze', { assetsDone: done, databaseBytes, message: 'Updating planner statistics' });
  await repo.analyze();
  const totals = await repo.counts();
  databaseBytes = await repo.databaseBytes();
  const result: DemoResult = { admin, users, assetsAdded: done, filesWritten: files.written, totals, databaseBytes, elapsedMs: Date.now() - started };
  progress('done', { assetsDone: done, databaseBytes });
  return result;
}
