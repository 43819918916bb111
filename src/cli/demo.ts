// `npm run demo -- --users N --assets M [--files all|none]`: fills the instance with demo data.
import { parseArgs } from 'node:util';
import { Lifeboat } from '../lib/server/app';
import { loadConfig } from '../lib/server/config';
import { DEMO_ADMIN, DEMO_USER_PASSWORD, demoUserEmail, fillDemoLibrary, type DemoProgress } from '../lib/server/demo/demo-library';

const USAGE = `Usage: npm run demo -- --users N --assets M [--files all|none] [--until-db-mb S]

Fills this Lifeboat instance (configured by the same environment as the server:
UPLOAD_LOCATION, DB_DATA_LOCATION or DB_URL/DB_HOSTNAME...) with demo data:
  - N ordinary users ${demoUserEmail(1)} ... (password "${DEMO_USER_PASSWORD}"),
    plus the existing admin; with no admin yet, it creates ${DEMO_ADMIN.email}
    (password "${DEMO_ADMIN.password}");
  - M assets spread over them (every tenth a VIDEO), two albums per user,
    and each asset's original, thumbnail, preview (and encoded video) in
    UPLOAD_LOCATION/upload, thumbs and encoded-video: small real JPEG and MP4
    files, hard-linked so that large libraries take little disk.
Runs again add more assets to the same users. Works while the server runs
(it attaches to the server's embedded database) or alone.

Options:
  --users N          ordinary users (default 3)
  --assets M         assets to add (default 1000)
  --files all|none   "none" writes database rows only, no files: for benchmarks
                     that need a large database (the Photos page then shows
                     broken thumbnails). Default "all".
  --until-db-mb S    stop adding assets once the database is S MB
  -h, --help         this text

Sizes measured (PostgreSQL 15, 2 cores, ext4): 100,000 assets with files take
about 15 s (a 71 MB database, 310,000 files); a 1 GB database is about 1,600,000
assets and takes about a minute with --files none:
  npm run demo -- --users 10 --assets 3000000 --files none --until-db-mb 1024
`;

function count(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, 0 or more (got "${value}")`);
  return n;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        users: { type: 'string' },
        assets: { type: 'string' },
        files: { type: 'string' },
        'until-db-mb': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  let users: number, assets: number, untilMb: number;
  try {
    users = count(args.users, 'users', 3);
    assets = count(args.assets, 'assets', 1000);
    untilMb = count(args['until-db-mb'], 'until-db-mb', 0);
    if (args.files !== undefined && args.files !== 'all' && args.files !== 'none') throw new Error(`--files must be "all" or "none" (got "${args.files}")`);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }

  const app = await Lifeboat.start(loadConfig());
  let lastPrint = 0;
  const print = (p: DemoProgress) => {
    const now = Date.now();
    if (p.phase === 'assets' && p.assetsDone < p.assetsTotal && now - lastPrint < 2000) return;
    lastPrint = now;
    const seconds = (p.elapsedMs / 1000).toFixed(1);
    if (p.phase === 'assets') {
      const pct = p.assetsTotal ? ((p.assetsDone / p.assetsTotal) * 100).toFixed(1) : '100';
      console.log(`  assets ${p.assetsDone.toLocaleString('en')}/${p.assetsTotal.toLocaleString('en')} (${pct}%), files ${p.filesWritten.toLocaleString('en')}, database ${mb(p.databaseBytes)}, ${seconds} s`);
    } else if (p.message) console.log(`  ${p.message}…`);
  };
  try {
    const result = await fillDemoLibrary(app, { users, assets, files: args.files === 'none' ? 'none' : 'all', untilDatabaseBytes: untilMb ? untilMb * 1024 * 1024 : undefined, onProgress: print });
    console.log(
      result.admin.created
        ? `Created the admin ${DEMO_ADMIN.email} with the password "${DEMO_ADMIN.password}".`
        : `Used the existing admin ${result.admin.email}.`,
    );
    const createdUsers = result.users.filter((u) => u.created).length;
    if (result.users.length) console.log(`Users: ${result.users.length} (${createdUsers} new), e.g. ${result.users[0].email} with the password "${DEMO_USER_PASSWORD}".`);
    console.log(`Added ${result.assetsAdded.toLocaleString('en')} assets and ${result.filesWritten.toLocaleString('en')} files in ${(result.elapsedMs / 1000).toFixed(1)} s.`);
    console.log(
      `The instance now has ${result.totals.assets.toLocaleString('en')} assets (${result.totals.videos.toLocaleString('en')} videos), ` +
        `${result.totals.albums} albums (${result.totals.albumAssets.toLocaleString('en')} album entries); database ${mb(result.databaseBytes)}.`,
    );
    return 0;
  } finally {
    await app.shutdown();
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`demo: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  },
);
