// `npm run bench:restore`: the app's restore against the raw `gunzip -c file | psql` of the
// same backup, timed in one run on a scratch instance (embedded cluster, fsync on) filled
// with at least 1 GB of demo data. Prints:
//   - the restore step alone (gunzip → restore filter → psql in one transaction, after the
//     schema reset) / raw gunzip | psql into a fresh empty database   (target ≤ 1.1)
//   - the whole restore (restore point + restore + migrations + health check) / raw  (target ≤ 1.5)
// Options: --db-mb N (database size to fill, default 1100), --rounds N (default 2; best of).
// Removes the instance at the end.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createRestoreFilter } from '../src/lib/server/backup/restore-filter';
import { MiB, mib, secs, startScratchInstance } from './scratch-instance';
import { childEnv, connectionArgs } from '../src/lib/server/db/connection';
import { clientToolsFor } from '../src/lib/server/db/pg-binaries';
import { RestoreRepository } from '../src/lib/server/repositories/restore.repository';

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`${command} exited with ${code}: ${stderr}`))));
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const result = await fn();
  return [performance.now() - started, result];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'db-mb': { type: 'string' }, rounds: { type: 'string' } } });
  const targetBytes = Number(values['db-mb'] ?? 1100) * MiB;
  const rounds = Number(values.rounds ?? 2);
  const instance = await startScratchInstance('restore', targetBytes);
  const { app, serverVersion, fill, cleanup } = instance;

  try {
    const { db } = app;

    const { filename } = await app.backups.createBackup();
    const dump = await app.restore.validate(filename);
    console.log(`  backup ${filename}: ${mib(dump.size)}\n`);
    await db.query('CHECKPOINT');
    const { psql } = await clientToolsFor(serverVersion);

    const repository = new RestoreRepository();
    const scratch = await db.connect('postgres');
    // Each measurement starts from a quiet server: no autovacuum (analyzing what the previous
    // load wrote) running alongside it, and dirty pages written out.
    const settle = async () => {
      for (let i = 0; i < 120; i++) {
        const { rows } = await scratch.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'`);
        if (rows[0].n === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      await scratch.query('CHECKPOINT');
    };
    const freshDatabase = async (name: string) => {
      await scratch.query(`DROP DATABASE IF EXISTS ${name}`);
      await scratch.query(`CREATE DATABASE ${name}`);
      await settle();
    };
    const appStep = (database: string) =>
      timed(() =>
        repository.loadDump({
          psql,
          connection: { ...db.connection, database },
          path: dump.path,
          compressed: dump.compressed,
          filter: createRestoreFilter({ connectingRole: db.connection.user, databaseName: database }),
        }),
      ).then(([ms]) => ms);
    const results = { raw: [] as number[], fresh: [] as number[], instance: [] as number[] };
    for (let round = 1; round <= rounds; round++) {
      // 1. Baseline: the reference recipe's pipe, into a fresh empty database (no filter, no transaction).
      await freshDatabase('bench_raw');
      const rawArgs = [psql, ...connectionArgs(db.connection, 'bench_raw'), '--no-psqlrc', '--quiet', '-v', 'ON_ERROR_STOP=1'];
      results.raw.push(await run('bash', ['-c', `set -o pipefail; gunzip -c ${quote(dump.path)} | ${rawArgs.map(quote).join(' ')}`], { ...process.env, ...childEnv(db.connection) }));
      // 2. The app's restore step alone (gunzip → filter → psql, one transaction after the schema
      // reset): into a fresh empty database as the baseline, and into the instance database, as a restore does.
      await freshDatabase('bench_step');
      results.fresh.push(await appStep('bench_step'));
      await db.closePool();
      await settle();
      results.instance.push(await appStep(db.connection.database));
      console.log(
        `  round ${round}: raw gunzip -c | psql ${secs(results.raw.at(-1)!)}, app restore step into a fresh database ${secs(results.fresh.at(-1)!)}, into the instance database ${secs(results.instance.at(-1)!)}`,
      );
    }
    for (const name of ['bench_raw', 'bench_step']) await scratch.query(`DROP DATABASE IF EXISTS ${name}`);
    await settle();
    await scratch.end();
    const best = (values: number[]) => Math.min(...values);
    const [raw, fresh, step] = [best(results.raw), best(results.fresh), best(results.instance)];

    // 3. The whole restore, as the page or the command line runs it.
    const [whole, status] = await timed(() => app.restore.restore(dump, { by: 'the benchmark' }));
    if (status.task !== 'done') throw new Error(`The restore failed: ${status.error}`);
    const restorePoint = statSync(join(app.backups.backupsFolder, status.restorePoint!)).size;
    console.log(`  whole restore (plain restore point ${mib(restorePoint)} + restore + migrations + health, until maintenance ends): ${secs(whole)}`);
    // Not downtime: the app is back while the restore point is compressed in the background.
    const [compress] = await timed(() => app.restore.idle());
    const compressed = app.maintenance.status.restorePoint!;
    console.log(`  then, in the background: restore point compressed to ${mib(statSync(join(app.backups.backupsFolder, compressed)).size)} in ${secs(compress)}`);

    const row = (name: string, ratio: number, target: number) =>
      console.log(`${name.padEnd(48)}${`${ratio.toFixed(2)}x`.padStart(8)}  target ≤ ${target.toFixed(2)}x ${ratio <= target ? 'OK' : 'MISSED'}`);
    console.log(`\nBest of ${rounds} (database ${mib(fill.databaseBytes)}, backup ${mib(dump.size)}): raw ${secs(raw)}, step ${secs(fresh)} (fresh) / ${secs(step)} (instance), whole ${secs(whole)}`);
    row('restore step (fresh database) / raw', fresh / raw, 1.1);
    row('restore step (instance database) / raw', step / raw, 1.1);
    row('whole restore / raw', whole / raw, 1.5);
  } finally {
    await cleanup();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
