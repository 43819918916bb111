// Compares the system `gzip -6` with createParallelGzip at levels 1..6 (compression only, from a
// file in the page cache) and prints time and size ratios: the levels a backup could use.
// bench:backup runs compareLevels() on the scratch instance's own dump; alone, this file makes
// ~200 MiB of synthetic pg_dump text shaped like an Immich database.
// Usage: npx tsx bench/gzip-levels.ts [sizeMiB]
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { once } from 'node:events';
import { findIgzip, IGZIP_LEVEL } from '../src/lib/server/process/igzip';
import { createParallelGzip, DEFAULT_CHUNK_SIZE, DEFAULT_CONCURRENCY, DEFAULT_GZIP_LEVEL } from '../src/lib/server/backup/parallel-gzip';

const sizeMiB = Number(process.argv[2] ?? 200) || 200;

// Seeded so every run compresses the same bytes.
let seed = 0x9e3779b9;
function rand(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 0x100000000;
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)];
const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[Math.floor(rand() * 16)]).join('');
const uuid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-${pick(['8', '9', 'a', 'b'])}${hex(3)}-${hex(12)}`;
const b64chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const base64 = (n: number) => Array.from({ length: n }, () => b64chars[Math.floor(rand() * 64)]).join('');
const pad = (n: number) => String(n).padStart(2, '0');
const timestamp = () => {
  const d = new Date(Date.UTC(2015, 0, 1) + Math.floor(rand() * 10 * 365 * 86400_000));
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${String(d.getUTCMilliseconds()).padStart(3, '0')}+00`;
};

const owners = Array.from({ length: 6 }, uuid);
const devices = ['iPhone 13 Pro', 'Pixel 7', 'SM-G991B', 'WEB', 'CLI'];
const cities = ['Berlin', 'Lisbon', 'Kyoto', 'Toronto', 'Cape Town', 'Oslo', 'Lyon', 'Austin'];
const makes = [['Apple', 'iPhone 13 Pro'], ['Google', 'Pixel 7'], ['SONY', 'ILCE-7M3'], ['Canon', 'Canon EOS R6']];

function assetRow(): string {
  const id = uuid();
  const owner = pick(owners);
  const ext = pick(['jpg', 'jpg', 'jpg', 'heic', 'mp4', 'png']);
  const name = pick(['IMG_', 'PXL_', 'DSC', 'VID_']) + Math.floor(rand() * 100000);
  const original = `upload/upload/${owner}/${hex(2)}/${hex(2)}/${id}.${ext}`;
  const thumb = `upload/thumbs/${owner}/${hex(2)}/${hex(2)}/${id}-thumbnail.webp`;
  return [id, pick(devices) + '-' + Math.floor(rand() * 1e6), owner, 'Library', ext === 'mp4' ? 'VIDEO' : 'IMAGE', original,
    timestamp(), timestamp(), rand() < 0.05 ? 't' : 'f', ext === 'mp4' ? '0:00:12.345000' : '0:00:00.00000', base64(27) + '=',
    thumb, `${name}.${ext}`, timestamp(), timestamp(), '\\N', 'timeline', base64(24)].join('\t');
}

function exifRow(): string {
  const [make, model] = pick(makes);
  return [uuid(), make, model, String(3000 + Math.floor(rand() * 3000)), String(2000 + Math.floor(rand() * 2000)),
    String(Math.floor(rand() * 9e6)), 'Horizontal (normal)', timestamp(), (rand() * 180 - 90).toFixed(6), (rand() * 360 - 180).toFixed(6),
    pick(cities), pick(['Europe/Berlin', 'America/Toronto', 'Asia/Tokyo']), String(Math.floor(rand() * 6400)), `f/${(1.4 + rand() * 10).toFixed(1)}`,
    '1/' + Math.floor(rand() * 4000), pick(['sRGB', 'Display P3']), '\\N'].join('\t');
}

function embeddingRow(): string {
  return uuid() + '\t[' + Array.from({ length: 64 }, () => (rand() * 0.2 - 0.1).toFixed(6)).join(',') + ']';
}

const tables: Array<[string, () => string]> = [
  ['public.asset (id, "deviceAssetId", "ownerId", "deviceId", type, "originalPath", "fileCreatedAt", "fileModifiedAt", "isFavorite", duration, checksum, "thumbnailPath", "originalFileName", "createdAt", "updatedAt", "deletedAt", visibility, thumbhash)', assetRow],
  ['public.asset_exif ("assetId", make, model, "exifImageWidth", "exifImageHeight", "fileSizeInByte", orientation, "dateTimeOriginal", latitude, longitude, city, "timeZone", iso, "fNumber", "exposureTime", "profileDescription", description)', exifRow],
  ['public.smart_search ("assetId", embedding)', embeddingRow],
];

async function generate(path: string): Promise<void> {
  const out = createWriteStream(path);
  const header = '--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\nSET client_encoding = \'UTF8\';\n\n';
  out.write(header);
  const target = sizeMiB * 1024 * 1024;
  let written = header.length;
  const perTable = target / tables.length;
  for (const [table, row] of tables) {
    const start = written;
    let block = `COPY ${table} FROM stdin;\n`;
    while (written - start + block.length < perTable) {
      block += row() + '\n';
      if (block.length > 1 << 20) {
        written += block.length;
        if (!out.write(block)) await once(out, 'drain');
        block = '';
      }
    }
    block += '\\.\n\n\n';
    written += block.length;
    out.write(block);
  }
  out.end();
  await once(out, 'finish');
}

function counter(): { sink: Writable; bytes: () => number } {
  let bytes = 0;
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { bytes += chunk.length; cb(); } });
  return { sink, bytes: () => bytes };
}

async function timeSystemGzip(path: string, bytes: number): Promise<[number, number]> {
  const t0 = performance.now();
  const child = spawn('bash', ['-c', 'head -c "$1" "$2" | gzip -6', 'gzip-6', String(bytes), path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const { sink, bytes: out } = counter();
  await Promise.all([pipeline(child.stdout, sink), once(child, 'exit')]);
  if (child.exitCode !== 0) throw new Error(`gzip exited with ${child.exitCode}`);
  return [(performance.now() - t0) / 1000, out()];
}

async function timeIgzip(path: string, bytes: number, igzip: string, level: number): Promise<[number, number]> {
  const t0 = performance.now();
  const child = spawn('bash', ['-c', 'head -c "$1" "$2" | "$3" -"$4" -c', 'igzip', String(bytes), path, igzip, String(level)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const { sink, bytes: out } = counter();
  await Promise.all([pipeline(child.stdout, sink), once(child, 'exit')]);
  if (child.exitCode !== 0) throw new Error(`igzip exited with ${child.exitCode}`);
  return [(performance.now() - t0) / 1000, out()];
}

async function timeParallel(path: string, bytes: number, level: number, chunkSize: number): Promise<[number, number]> {
  const t0 = performance.now();
  const { sink, bytes: out } = counter();
  await pipeline(createReadStream(path, { highWaterMark: 1024 * 1024, end: bytes - 1 }), createParallelGzip({ level, chunkSize }), sink);
  return [(performance.now() - t0) / 1000, out()];
}

/** Compresses the first `sampleMiB` of `path` with `gzip -6` and with the app's parallel gzip at each level, printing one line each. */
export async function compareLevels(path: string, sampleMiB = 256): Promise<void> {
  const bytes = Math.min(statSync(path).size, sampleMiB * 1024 * 1024);
  const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
  // Read once, so every line below reads from the page cache.
  await pipeline(createReadStream(path, { end: bytes - 1 }), counter().sink);
  console.log(`Levels tried (compression only, ${mib(bytes)} MiB of the dump; zlib: concurrency ${DEFAULT_CONCURRENCY}, level ${DEFAULT_GZIP_LEVEL} when igzip is missing):`);
  const [baseTime, baseSize] = await timeSystemGzip(path, bytes);
  console.log(`  gzip -6                ${baseTime.toFixed(2)} s  ${mib(baseSize)} MiB`);
  const tries: Array<[number, number]> = [1, 2, 3, 4, 6].map((level) => [level, DEFAULT_CHUNK_SIZE]);
  // The app's level with members of another size: what the member size costs or saves.
  tries.push([DEFAULT_GZIP_LEVEL, DEFAULT_CHUNK_SIZE === 4 * 1024 * 1024 ? 1024 * 1024 : 4 * 1024 * 1024]);
  for (const [level, chunkSize] of tries) {
    const [time, size] = await timeParallel(path, bytes, level, chunkSize);
    const name = `level ${level}, ${chunkSize / 1024 / 1024} MiB`;
    console.log(`  ${name.padEnd(21)}  ${time.toFixed(2)} s  ${mib(size)} MiB  time ${(time / baseTime).toFixed(2)}x  size ${(size / baseSize).toFixed(3)}x`);
  }
  const igzip = findIgzip(process.env.BACKUP_COMPRESSOR);
  if (igzip) {
    for (const level of [0, 1, 2, 3]) {
      const [time, size] = await timeIgzip(path, bytes, igzip, level);
      const name = `igzip -${level}${level === IGZIP_LEVEL ? ' (app)' : ''}`;
      console.log(`  ${name.padEnd(21)}  ${time.toFixed(2)} s  ${mib(size)} MiB  time ${(time / baseTime).toFixed(2)}x  size ${(size / baseSize).toFixed(3)}x`);
    }
  } else console.log('  (igzip is not installed: the app compresses with zlib, the levels above; Debian: apt-get install isal)');
  console.log('');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = await mkdtemp(join(tmpdir(), 'gzip-levels-'));
  try {
    const file = join(dir, 'dump.sql');
    await generate(file);
    await compareLevels(file, sizeMiB);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
