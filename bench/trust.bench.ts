// `npm run bench:trust`: the trust features against the plain tools, timed in one run on a scratch
// instance (embedded cluster, fsync on) filled with at least 1 GB of demo data. Each side runs the
// same number of rounds after the same warm-up (one read of the file); best of N. Prints:
//   - verification of the backup (SHA-256 against its manifest, whole gzip, end line)
//     / `gzip -t` + `sha256sum` of the same file, each in its own process       (target ≤ 1.2)
//   - a restore drill of the backup (scratch database, load, rows, migrations, health check, drop)
//     / the restore step of the same backup (new database, parallel load, swap)  (target ≤ 1.3)
//   - the restore preview, uncached (the dump streamed once) / `gzip -t`          (target ≤ 1.5)
//   - p95 of GET /api/server/version during a drill, from another process          (target < 200 ms)
// Ends with one JSON line: {"verifyRatio":…, "drillRatio":…, "previewRatio":…, "p95VersionMs":…}.
// Options: --db-mb N (default 1100), --rounds N (default 3). Removes the instance at the end.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { RestoreRepository } from '../src/lib/server/repositories/restore.repository';
import { loadDumpParallel } from '../src/lib/server/restore/parallel-load';
import { prelude } from '../src/lib/server/repositories/restore.repository';
import { checkExtensions } from '../src/lib/server/restore/extensions';
import { StagedDatabase } from '../src/lib/server/restore/staged-database';
import type { RestoreLog } from '../src/lib/server/restore/restore-log';
import { MiB, mib, run, secs, startScratchInstance, timed } from './scratch-instance';
import { join } from 'node:path';

/** Another process that asks `url` every 25 ms until told to stop, and prints its latencies. */
function prober(url: string): { stop(): Promise<number[]> } {
  const script = `
    const url = process.argv[1]; const times = []; let on = true;
    process.stdin.on('data', () => { on = false; });
    (async () => {
      while (on) {
        const t = performance.now();
        try { const r = await fetch(url); await r.text(); } catch { times.push(10000); continue; }
        times.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 25));
      }
      process.stdout.write(JSON.stringify(times));
    })();`;
  const child = spawn(process.execPath, ['-e', script, url], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    async stop() {
      child.stdin.end('stop');
      await closed;
      return JSON.parse(out || '[]') as number[];
    },
  };
}

const p95 = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] ?? NaN;
};

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'db-mb': { type: 'string' }, rounds: { type: 'string' } } });
  const targetBytes = Number(values['db-mb'] ?? 1100) * MiB;
  const rounds = Number(values.rounds ?? 3);
  const { app, fill, cleanup } = await startScratchInstance('trust', targetBytes);
  let server: Server | null = null;
  try {
    const { filename, filesize } = await app.backups.createBackup();
    const path = join(app.backups.backupsFolder, filename);
    console.log(`  backup ${filename}: ${mib(filesize)}\n`);
    // The version endpoint as the web server answers it, in this process (the one the drill runs in).
    server = createServer((_req, res) => {
      const body = JSON.stringify(app.serverInfo.version());
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/server/version`;

    const repository = new RestoreRepository();
    const { db } = app;
    const admin = db.admin ?? db.connection;
    const dump = await app.restore.validate(filename);
    const extensions = await checkExtensions(repository, admin, dump);
    const facts = await repository.stagingFacts(admin);
    const quietLog = { info: async () => undefined, progress: () => undefined, task: async () => undefined } as unknown as RestoreLog;
    // The restore step as a restore runs it (staged): a new database, the parallel load, the swap; the old data dropped after (untimed).
    const restoreStep = async () => {
      const staged = new StagedDatabase(repository, admin);
      await db.closePool();
      const [ms] = await timed(async () => {
        await staged.create(facts!, db.connection.user);
        await loadDumpParallel({ config: app.config, db, repository }, dump, quietLog, { login: db.connection, database: staged.staged, prelude: prelude('staged', extensions), extensions }, {
          signal: new AbortController().signal,
          jobs: app.config.restoreJobs,
          spoolFolder: join(app.config.uploadLocation, '.lifeboat', 'bench-spool'),
        });
        await staged.swapIn();
      });
      await staged.dropReplaced();
      return ms;
    };

    // Warm-up: the file read once by each side's reader.
    await run('gzip', ['-t', path]);
    await app.verification.verify(filename);
    const results = { gzipT: [] as number[], sha: [] as number[], verify: [] as number[], preview: [] as number[], step: [] as number[], drill: [] as number[], latencies: [] as number[] };
    for (let round = 1; round <= rounds; round++) {
      results.gzipT.push(await run('gzip', ['-t', path]));
      results.sha.push(await run('sha256sum', [path]));
      const [verifyMs, verification] = await timed(() => app.verification.verify(filename));
      if (verification.status !== 'verified') throw new Error(`verification failed: ${verification.error}`);
      results.verify.push(verifyMs);
      // Uncached: the preview's cache for this file is dropped first.
      await app.backups.manifests.update(filename, (m) => ({ ...m, preview: undefined }));
      results.preview.push((await timed(() => app.preview.preview(filename)))[0]);
      results.step.push(await restoreStep());
      const probe = prober(url);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const [drillMs, drill] = await timed(async () => (await app.drills.start(filename)).done);
      const latencies = await probe.stop();
      if (drill.status !== 'passed') throw new Error(`the drill failed: ${drill.error}`);
      results.drill.push(drillMs);
      results.latencies.push(...latencies);
      console.log(
        `  round ${round}: gzip -t ${secs(results.gzipT.at(-1)!)}, sha256sum ${secs(results.sha.at(-1)!)}, verify ${secs(verifyMs)}, preview ${secs(results.preview.at(-1)!)}; ` +
          `restore step ${secs(results.step.at(-1)!)}, drill ${secs(drillMs)} (p95 version ${p95(latencies).toFixed(1)} ms over ${latencies.length} requests)`,
      );
    }
    const best = (list: number[]) => Math.min(...list);
    const verifyRatio = best(results.verify) / (best(results.gzipT) + best(results.sha));
    const drillRatio = best(results.drill) / best(results.step);
    const previewRatio = best(results.preview) / best(results.gzipT);
    const p95VersionMs = p95(results.latencies);
    const row = (name: string, value: string, target: string, ok: boolean) => console.log(`${name.padEnd(52)}${value.padStart(10)}  target ${target} ${ok ? 'OK' : 'MISSED'}`);
    console.log(`\nBest of ${rounds} (database ${mib(fill.databaseBytes)}, backup ${mib(filesize)}):`);
    row('verification / (gzip -t + sha256sum)', `${verifyRatio.toFixed(2)}x`, '≤ 1.20x', verifyRatio <= 1.2);
    row(`drill / restore step (${app.config.restoreJobs} connections)`, `${drillRatio.toFixed(2)}x`, '≤ 1.30x', drillRatio <= 1.3);
    row('preview (uncached) / gzip -t', `${previewRatio.toFixed(2)}x`, '≤ 1.50x', previewRatio <= 1.5);
    row('p95 GET /api/server/version during drills', `${p95VersionMs.toFixed(1)} ms`, '< 200 ms', p95VersionMs < 200);
    console.log(
      JSON.stringify({ verifyRatio: Number(verifyRatio.toFixed(3)), drillRatio: Number(drillRatio.toFixed(3)), previewRatio: Number(previewRatio.toFixed(3)), p95VersionMs: Number(p95VersionMs.toFixed(1)) }),
    );
  } finally {
    server?.close();
    await cleanup();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
