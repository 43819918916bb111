// `npm run bench:backup`: the app's database backup against the reference pipeline
// (`pg_dump --clean --if-exists | gzip`, gzip's default level 6) and against raw
// `pg_dump > /dev/null`, timed in the same run on a scratch instance (embedded cluster, fsync
// on) filled with at least 1 GB of demo data; each side runs in its own process, alternating,
// best of the rounds. First it compresses the instance's own dump at the levels the app could
// use (the levels tried). Prints the time ratios, file sizes and the app's peak RSS; removes the
// instance; ends with one JSON line {"backupTimeRatio":…, "backupSizeRatio":…, "peakRssMiB":…}.
// Targets: app ≤ 0.35× the reference's time, file ≤ 1.2× its size, peak RSS < 150 MB.
// Options: --db-mb N (database size to fill, default 1100), --rounds N (default 3).
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Lifeboat } from '../src/lib/server/app';
import { loadConfig } from '../src/lib/server/config';
import { MiB, mib, secs, startScratchInstance } from './scratch-instance';
import { connectionArgs } from '../src/lib/server/db/connection';
import { clientToolsFor } from '../src/lib/server/db/pg-binaries';
import { DEFAULT_GZIP_LEVEL } from '../src/lib/server/backup/parallel-gzip';
import { compareLevels } from './gzip-levels';
import { findIgzip, IGZIP_LEVEL } from '../src/lib/server/process/igzip';


function run(command: string, args: string[], options: { stdout?: number | 'ignore'; env?: NodeJS.ProcessEnv } = {}): Promise<{ ms: number; stdout: string }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', options.stdout ?? 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ ms: performance.now() - started, stdout }) : reject(new Error(`${command} exited with ${code}: ${stderr}`))));
  });
}

/** Child mode: the app's own backup in a fresh process (attached to the running cluster), so its peak RSS is the backup's alone. */
async function appBackupChild(): Promise<void> {
  const app = await Lifeboat.start(loadConfig(), { log: () => undefined });
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  const { filename, filesize } = await app.backups.createBackup();
  const ms = performance.now() - started;
  // VmHWM: the kernel's record of this process's peak resident set.
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
  await app.shutdown();
  process.stdout.write(JSON.stringify({ filename, filesize, ms, rssBefore, peakRss: hwm }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'db-mb': { type: 'string' }, rounds: { type: 'string' }, 'app-backup-child': { type: 'boolean' } } });
  if (values['app-backup-child']) return appBackupChild();
  const targetBytes = Number(values['db-mb'] ?? 1100) * MiB;
  const rounds = Number(values.rounds ?? 3);

  const instance = await startScratchInstance('backup', targetBytes);
  const { root, env, app, serverVersion, fill, cleanup } = instance;

  try {
    // The app's own role may not CHECKPOINT: the administrator's connection does.
    if (app.db.admin) {
      const admin = new pg.Client({ ...app.db.admin, database: 'postgres' });
      await admin.connect();
      await admin.query('CHECKPOINT');
      await admin.end();
    }

    const { pgDump } = await clientToolsFor(serverVersion);
    const args = [...connectionArgs(app.db.connection), '--clean', '--if-exists'];
    const backups = join(env.UPLOAD_LOCATION, 'backups');
    const referenceFile = join(root, 'reference.sql.gz');
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

    // Warm the page cache once, so the first measured pipeline is not penalised; the SQL is kept for the levels.
    const devNull = openSync('/dev/null', 'w');
    const sqlFile = join(root, 'dump.sql');
    await run(pgDump, [...args, '-f', sqlFile]);
    const rawDumpBytes = statSync(sqlFile).size;
    console.log(`  pg_dump output: ${mib(rawDumpBytes)} of SQL\n`);
    await compareLevels(sqlFile);
    rmSync(sqlFile);

    const results = { raw: [] as number[], reference: [] as number[], app: [] as number[] };
    let referenceSize = 0;
    let appSize = 0;
    let peakRss = 0;
    let rssBefore = 0;
    for (let round = 1; round <= rounds; round++) {
      results.raw.push((await run(pgDump, args, { stdout: devNull })).ms);
      rmSync(referenceFile, { force: true });
      results.reference.push((await run('bash', ['-c', `set -o pipefail; ${[pgDump, ...args].map(quote).join(' ')} | gzip > ${quote(referenceFile)}`])).ms);
      referenceSize = statSync(referenceFile).size;
      const child = await run(process.execPath, ['--import', 'tsx', 'bench/backup.bench.ts', '--app-backup-child'], { env });
      const appRun = JSON.parse(child.stdout) as { filename: string; filesize: number; ms: number; rssBefore: number; peakRss: number };
      results.app.push(appRun.ms);
      appSize = appRun.filesize;
      peakRss = Math.max(peakRss, appRun.peakRss);
      rssBefore = appRun.rssBefore;
      rmSync(join(backups, appRun.filename));
      console.log(`  round ${round}: raw pg_dump ${secs(results.raw.at(-1)!)}, pg_dump | gzip ${secs(results.reference.at(-1)!)}, app ${secs(appRun.ms)}`);
    }
    closeSync(devNull);

    const best = (values: number[]) => Math.min(...values);
    const [raw, reference, appMs] = [best(results.raw), best(results.reference), best(results.app)];
    const row = (name: string, value: string, note = '') => console.log(`${name.padEnd(34)}${value.padStart(14)}  ${note}`);
    console.log(`\nBest of ${rounds} (database ${mib(fill.databaseBytes)}, dump ${mib(rawDumpBytes)}):`);
    row('raw pg_dump > /dev/null', secs(raw));
    row('pg_dump --clean --if-exists | gzip', secs(reference), mib(referenceSize));
    const igzip = findIgzip(env.BACKUP_COMPRESSOR, env.PATH);
    row(igzip ? `app backup (igzip -${IGZIP_LEVEL})` : `app backup (zlib level ${DEFAULT_GZIP_LEVEL})`, secs(appMs), mib(appSize));
    row('time app / reference', `${(appMs / reference).toFixed(2)}x`, `target ≤ 0.35x ${appMs / reference <= 0.35 ? 'OK' : 'MISSED'}`);
    row('time app / raw pg_dump', `${(appMs / raw).toFixed(2)}x`);
    row('size app / reference', `${(appSize / referenceSize).toFixed(2)}x`, `target ≤ 1.20x ${appSize / referenceSize <= 1.2 ? 'OK' : 'MISSED'}`);
    row('app peak RSS (VmHWM)', mib(peakRss), `target < 150 MiB ${peakRss < 150 * MiB ? 'OK' : 'MISSED'} (${mib(rssBefore)} before the backup started)`);
    console.log(JSON.stringify({ backupTimeRatio: Number((appMs / reference).toFixed(3)), backupSizeRatio: Number((appSize / referenceSize).toFixed(3)), peakRssMiB: Number((peakRss / MiB).toFixed(1)) }));
  } finally {
    await cleanup();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
