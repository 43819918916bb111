// `npm run bench:restore`: the app's restore against the raw `gunzip -c file | psql` of the
// same backup, timed in one run on a scratch instance (embedded cluster, fsync on) filled
// with at least 1 GB of demo data. Prints:
//   - the restore step alone, as a restore runs it: a new database beside the instance's, the dump
//     into it (gunzip, igzip for a verified file → restore filter → parallel load on RESTORE_JOBS connections), the swap of names
//     / raw gunzip | psql into a fresh empty database   (target ≤ 0.85); the in-place fallback, for information
//   - the whole restore (from the request until maintenance ends: staged load, swap, migrations,
//     health check; the replaced database is saved as a restore-point file afterwards) / raw  (target ≤ 1.0)
//   - for reference, the floor of a one-connection load on this machine: the same file through
//     `igzip -dc | psql -1` (one transaction, so the WAL is skipped as in the app's load; no filter,
//     no checks) into a fresh empty database / raw
//   - for reference, PostgreSQL's own parallel restore of the same database: pg_restore -j2 of a
//     custom-format dump (pg_dump -Fc -Z1), into a fresh empty database / raw (the issue's yardstick)
// Ends with one JSON line: {"restoreStepRatio":…, "wholeRestoreRatio":…, "pgRestoreJ2Ratio":…, "floorRatio":…}.
// Options: --db-mb N (database size to fill, default 1100), --rounds N (default 3; best of).
// Removes the instance at the end.
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createRestoreFilter } from '../src/lib/server/dump-filter';
import { ALLOWED_EXTENSIONS, checkExtensions } from '../src/lib/server/restore/extensions';
import { MiB, mib, run, secs, startScratchInstance, timed } from './scratch-instance';
import { childEnv, connectionArgs } from '../src/lib/server/db/connection';
import { clientToolsFor } from '../src/lib/server/db/pg-binaries';
import { prelude, RestoreRepository } from '../src/lib/server/repositories/restore.repository';
import { cannotStage, StagedDatabase } from '../src/lib/server/restore/staged-database';
import { loadDumpParallel } from '../src/lib/server/restore/parallel-load';
import type { RestoreLog } from '../src/lib/server/restore/restore-log';

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'db-mb': { type: 'string' }, rounds: { type: 'string' } } });
  const targetBytes = Number(values['db-mb'] ?? 1100) * MiB;
  const rounds = Number(values.rounds ?? 3);
  const instance = await startScratchInstance('restore', targetBytes);
  const { app, serverVersion, fill, cleanup } = instance;

  try {
    const { db } = app;

    const { filename } = await app.backups.createBackup();
    // As after every backup: verified (zlib), its rows counted; a verified file may be inflated by igzip.
    const verification = await app.verification.verify(filename);
    if (verification.status !== 'verified') throw new Error(`The backup did not verify: ${verification.error}`);
    const manifest = (await app.backups.manifests.read(filename))!;
    const dump = await app.restore.validate(filename);
    console.log(`  backup ${filename}: ${mib(dump.size)}\n`);
    // The administrator (the embedded cluster's superuser): the app's own role may not CHECKPOINT or create databases.
    const adminConnection = db.admin ?? db.connection;
    const { psql, pgDump } = await clientToolsFor(serverVersion);
    const pgRestore = join(dirname(pgDump), 'pg_restore');
    // The reference: the same database in pg_dump's custom format, as pg_restore -j needs (written by the cluster's own user).
    const customDump = join(instance.root, 'reference.dump');
    await run(pgDump, [...connectionArgs(adminConnection, db.connection.database), '--format=custom', '--compress=1', '--file', customDump], { ...process.env, ...childEnv(adminConnection) });

    const repository = new RestoreRepository();
    const scratch = new pg.Client({ ...adminConnection, database: 'postgres' });
    await scratch.connect();
    await scratch.query('CHECKPOINT');
    // Each measurement starts from a quiet server, as a real restore does: the database the last
    // load wrote is vacuumed and analyzed now (else autovacuum does it during the next
    // measurement, competing for the 2 cores), no autovacuum worker runs, dirty pages are written out.
    const settle = async (loaded?: string) => {
      if (loaded) {
        const client = await db.connect(loaded);
        try {
          await client.query('VACUUM (ANALYZE)');
        } finally {
          await client.end();
        }
      }
      for (let i = 0; i < 120; i++) {
        const { rows } = await scratch.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'`);
        if (rows[0].n === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      await scratch.query('CHECKPOINT');
    };
    const extensions = await checkExtensions(repository, db.admin ?? db.connection, dump);
    const roles = await repository.roleNames(db.connection);
    const freshDatabase = async (name: string) => {
      await scratch.query(`DROP DATABASE IF EXISTS ${name}`);
      // As a restore makes it: owned by the unprivileged role that runs the dump, the extensions made first by the administrator.
      await scratch.query(`CREATE DATABASE ${name} OWNER ${db.connection.user}`);
      await repository.createExtensions(db.admin ?? db.connection, name, extensions, db.connection.user);
      await settle();
    };
    const quietLog = { info: async () => undefined, progress: () => undefined, task: async () => undefined } as unknown as RestoreLog;
    // The staged load as a restore runs it: split, on RESTORE_JOBS connections. Its stages are noted
    // (schema and rows, then indexes and constraints) to see where the time goes.
    let stages = '';
    const loadParallel = async (database: string) => {
      const started = performance.now();
      let postData = 0;
      const result = await loadDumpParallel({ config: app.config, db, repository }, dump, quietLog, { login: db.connection, database, prelude: prelude('staged', extensions), extensions }, {
        signal: new AbortController().signal,
        jobs: app.config.restoreJobs,
        spoolFolder: join(instance.root, 'spool'),
        igzip: app.config.igzip,
        onProgress: ({ detail }) => {
          if (!postData && detail.startsWith('Building')) postData = performance.now();
        },
      });
      const ended = performance.now();
      stages = `schema and rows ${secs((postData || ended) - started)}, indexes and constraints ${secs(postData ? ended - postData : 0)}, spooled ${mib(result.spoolPeakBytes)}`;
      return result;
    };
    // The in-place fallback: one transaction.
    const load = (database: string) =>
      repository.loadDump({
        psql,
        connection: { ...db.connection, database },
        path: dump.path,
        compressed: dump.compressed,
        prelude: prelude('staged'),
        filter: createRestoreFilter({ databaseName: db.connection.database, existingRoles: roles, allowedExtensions: ALLOWED_EXTENSIONS, freezeCopies: true }),
        // As RestoreService.load: the bytes checked against the verified manifest before COMMIT, igzip inflating.
        expectFile: { sha256: manifest.sha256, size: manifest.size, verified: true, error: 'the backup changed during the benchmark' },
        igzip: app.config.igzip,
      });
    // The restore step as a restore runs it (staged): a new database beside the instance's,
    // the dump into it in one transaction, then the swap of names. The old data is dropped
    // afterwards (timed apart, as raw has no old data to drop).
    const facts = await repository.stagingFacts(db.admin ?? db.connection);
    const cannot = cannotStage(facts, dump, db.connection.database);
    if (cannot) throw new Error(`The scratch instance cannot stage a restore: ${cannot}`);
    const stagedStep = async () => {
      const staged = new StagedDatabase(repository, db.admin ?? db.connection);
      const [ms] = await timed(async () => {
        await staged.create(facts!, db.connection.user);
        // As RestoreService.load chooses: one connection (one psql, one transaction) below 2 jobs.
        if (app.config.restoreJobs < 2) {
          await load(staged.staged);
          stages = 'one connection';
        } else await loadParallel(staged.staged);
        await staged.swapIn();
      });
      const [dropMs] = await timed(() => staged.dropReplaced());
      return { ms, dropMs };
    };
    await settle(db.connection.database);
    const results = { floor: [] as number[], raw: [] as number[], staged: [] as number[], drop: [] as number[], inPlace: [] as number[], whole: [] as number[], pgRestore: [] as number[] };
    // 3. The whole restore, as the page or the command line runs it: restore point, staged
    // restore step, migrations, health check, until maintenance mode ends.
    const wholeRestore = async () => {
      const [ms, status] = await timed(() => app.restore.restore(dump, { by: 'the benchmark' }));
      if (status.task !== 'done') throw new Error(`The restore failed: ${status.error}`);
      // Not downtime: the app is back while the replaced database is saved as a restore-point file and
      // dropped, and the files are compared with the restored database. Both end before the next measurement.
      const [background] = await timed(async () => {
        await app.restore.idle();
        await app.consistency.idle();
      });
      const point = app.maintenance.status.restorePoint;
      const size = point ? statSync(join(app.backups.backupsFolder, point)).size : 0;
      console.log(`           whole restore ${secs(ms)}; then in the background, the replaced database saved as ${point} (${mib(size)}) and dropped, and the files report made, in ${secs(background)}`);
      return ms;
    };
    // The dump inflated by `inflater` into psql, into a fresh empty database; timed. As the reference
    // recipe runs it: psql as the database's superuser.
    const pipeIntoFresh = async (name: string, inflater: string, psqlOptions: string[] = []) => {
      await freshDatabase(name);
      const args = [psql, ...connectionArgs(adminConnection, name), '--no-psqlrc', '--quiet', '-v', 'ON_ERROR_STOP=1', ...psqlOptions];
      const ms = await run('bash', ['-c', `set -o pipefail; ${inflater} ${quote(dump.path)} | ${args.map(quote).join(' ')}`], { ...process.env, ...childEnv(adminConnection) });
      await scratch.query(`DROP DATABASE ${name}`);
      await settle();
      return ms;
    };
    for (let round = 1; round <= rounds; round++) {
      // 1. Baseline: the reference recipe's pipe, into a fresh empty database (no filter, no transaction).
      results.raw.push(await pipeIntoFresh('bench_raw', 'gunzip -c'));
      // The one-connection floor: the app's inflater and one transaction, nothing else (needs igzip).
      if (app.config.igzip) results.floor.push(await pipeIntoFresh('bench_floor', `${quote(app.config.igzip)} -dc`, ['--single-transaction']));
      // The reference: pg_restore -j2 into a fresh empty database, as its superuser.
      await freshDatabase('bench_pg_restore');
      results.pgRestore.push(await run(pgRestore, [...connectionArgs(adminConnection, 'bench_pg_restore'), '--jobs=2', '--no-owner', customDump], { ...process.env, ...childEnv(adminConnection) }));
      await scratch.query('DROP DATABASE bench_pg_restore');
      await settle();
      // 2. The app's restore step, staged (the default), then in place (the fallback for a role
      // that may not create databases: one transaction in the instance database after the schema reset).
      await db.closePool();
      const { ms, dropMs } = await stagedStep();
      results.staged.push(ms);
      results.drop.push(dropMs);
      await settle(db.connection.database);
      results.inPlace.push((await timed(() => load(db.connection.database)))[0]);
      await settle(db.connection.database);
      console.log(
        `  round ${round}: raw gunzip -c | psql ${secs(results.raw.at(-1)!)}; igzip -dc | psql -1 ${results.floor.length ? secs(results.floor.at(-1)!) : 'n/a'}; pg_restore -j2 ${secs(results.pgRestore.at(-1)!)}; app restore step staged ${secs(ms)} (${stages}; then the old data dropped in ${secs(dropMs)}), in place ${secs(results.inPlace.at(-1)!)}`,
      );
      results.whole.push(await wholeRestore());
      await settle(db.connection.database);
    }
    await scratch.end();
    const best = (values: number[]) => Math.min(...values);
    const [raw, step, inPlace, whole, pgRestoreMs] = [best(results.raw), best(results.staged), best(results.inPlace), best(results.whole), best(results.pgRestore)];

    const row = (name: string, ratio: number, target: number) =>
      console.log(`${name.padEnd(48)}${`${ratio.toFixed(2)}x`.padStart(8)}  target ≤ ${target.toFixed(2)}x ${ratio <= target ? 'OK' : 'MISSED'}`);
    console.log(`\nBest of ${rounds} (database ${mib(fill.databaseBytes)}, backup ${mib(dump.size)}): raw ${secs(raw)}, step ${secs(step)} (staged) / ${secs(inPlace)} (in place), whole ${secs(whole)}`);
    row(`restore step (staged, ${app.config.restoreJobs} connections) / raw`, step / raw, 0.85);
    row('whole restore / raw', whole / raw, 1.0);
    console.log(`${'restore step in place (fallback) / raw'.padEnd(48)}${`${(inPlace / raw).toFixed(2)}x`.padStart(8)}  (no target: used when the role may not create databases)`);
    const floor = results.floor.length ? best(results.floor) : null;
    if (floor) console.log(`${'igzip -dc | psql -1 (one-connection floor) / raw'.padEnd(48)}${`${(floor / raw).toFixed(2)}x`.padStart(8)}  (the app's step / this floor: ${(step / floor).toFixed(2)}x)`);
    console.log(`${'pg_restore -j2, custom format (reference) / raw'.padEnd(48)}${`${(pgRestoreMs / raw).toFixed(2)}x`.padStart(8)}  (PostgreSQL's own parallel restore of the same database, on this machine)`);
    console.log(JSON.stringify({ restoreStepRatio: Number((step / raw).toFixed(3)), wholeRestoreRatio: Number((whole / raw).toFixed(3)), pgRestoreJ2Ratio: Number((pgRestoreMs / raw).toFixed(3)), ...(floor ? { floorRatio: Number((floor / raw).toFixed(3)) } : {}) }));
  } finally {
    await cleanup();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
