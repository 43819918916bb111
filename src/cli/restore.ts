import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import type { Lifeboat } from '../lib/server/app';
import type { ValidatedDump } from '../lib/server/restore/validate-backup';
import type { MaintenanceStatus } from '../lib/shared/types';
import { EXIT, UsageError, formatBytes, withApp } from './app';

export const RESTORE_HELP = `Usage: npm run cli -- restore <file> [--yes]

Replaces the instance database with a backup, as Administration > Maintenance does:
  1. checks the file (gzip readable, starts like a pg_dump/pg_dumpall dump);
  2. makes a restore point (restore-point-immich-db-backup-...sql.gz);
  3. ends the other sessions on the database (a running web server's included:
     it shows the maintenance screen meanwhile);
  4. streams the dump through psql in ONE transaction, refusing psql
     meta-commands such as \\! and COPY ... PROGRAM: into a new database that
     then takes the live one's name, or (when the role may not create databases,
     and for cluster dumps) into the live database after resetting its public schema;
  5. runs the migrations (an older backup is migrated; a newer one is refused);
  6. checks that the schema is current and an admin exists;
  on any failure after step 3 it rolls back (the previous database gets its name
  back, or the restore point is reloaded) and stays in maintenance mode
  (see "npm run cli -- maintenance end").

<file> is a name in UPLOAD_LOCATION/backups (see "npm run cli -- list") or a path.
Works whether or not the web server runs; only one backup or restore at a time.

Options:
  --yes, -y    do not ask for confirmation (required when stdin is not a terminal)
  --help, -h   this text

Manual equivalent (no restore point, no checks, no rollback):
  gunzip --stdout dump.sql.gz \\
  | sed "s/SELECT pg_catalog.set_config('search_path', '', false);/SELECT pg_catalog.set_config('search_path', 'public, pg_catalog', true);/g" \\
  | psql --dbname=postgres --username=<DB_USERNAME>
`;

/** A name in the backups folder, or a path to a file anywhere. */
async function locate(app: Lifeboat, file: string): Promise<ValidatedDump> {
  if (!file.includes('/') && existsSync(`${app.backups.backupsFolder}/${file}`)) return app.restore.validate(file);
  if (existsSync(file)) return app.restore.validatePath(resolve(file));
  return app.restore.validate(file);
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

const STEPS_WITH_PROGRESS = ['backup', 'restore', 'rollback'];

/** Prints the log lines as they come, and each step's progress (in place on a terminal, every 10% otherwise). */
function follow(app: Lifeboat): () => void {
  const tty = process.stdout.isTTY;
  let printed = app.maintenance.status.log.length;
  let first = app.maintenance.status.log[0];
  let task = '';
  let decile = -1;
  let barShown = false;
  const clearBar = () => {
    if (barShown) process.stdout.write('\r\x1b[K');
    barShown = false;
  };
  const show = (status: MaintenanceStatus) => {
    // start() begins a new log: print it from its first line.
    if (status.log[0] !== first || status.log.length < printed) printed = 0;
    first = status.log[0];
    const fresh = status.log.slice(printed);
    printed = status.log.length;
    if (fresh.length) clearBar();
    for (const line of fresh) console.log(line.replace(/^\S+ /, ''));
    if (status.task !== task) {
      task = status.task;
      decile = -1;
    }
    if (!status.active || !STEPS_WITH_PROGRESS.includes(status.task)) return;
    const pct = Math.floor(status.progress * 100);
    if (tty) {
      process.stdout.write(`\r  ${status.task} ${String(pct).padStart(3)}%\x1b[K`);
      barShown = true;
    } else if (Math.floor(pct / 10) > decile) {
      decile = Math.floor(pct / 10);
      console.log(`  ${status.task} ${pct}%`);
    }
  };
  const unsubscribe = app.maintenance.subscribe(show);
  return () => {
    unsubscribe();
    clearBar();
  };
}

export async function restoreCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { yes: { type: 'boolean', short: 'y' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    console.log(RESTORE_HELP);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(`Give exactly one backup file.\n\n${RESTORE_HELP}`);
  if (!values.yes && !process.stdin.isTTY) throw new UsageError('Refusing to restore without --yes: stdin is not a terminal, so nobody can confirm.');

  return withApp(async (app) => {
    const dump = await locate(app, positionals[0]);
    const database = app.db.connection.database;
    console.log(`Backup: ${dump.path} (${formatBytes(dump.size)}, ${dump.kind === 'cluster' ? 'pg_dumpall cluster dump' : 'pg_dump database dump'})`);
    if (!values.yes && !(await confirm(`This replaces the database "${database}" with this backup (a restore point is made first). Continue? [y/N] `))) {
      console.log('Nothing was changed.');
      return EXIT.failed;
    }
    const stop = follow(app);
    const final = await app.restore.restore(dump, { by: 'the command line' }).finally(stop);
    if (final.task === 'done') {
      console.log('Restore complete. Saving the restore point (the data from before the restore)…');
      await app.restore.idle();
      console.log(`Restore point: ${app.maintenance.status.restorePoint}`);
      return EXIT.ok;
    }
    console.error(`\n${final.error ?? 'Restore failed'}`);
    if (final.active) console.error('Lifeboat stays in maintenance mode: "npm run cli -- maintenance end" leaves it.');
    return EXIT.failed;
  }, { skipMigrations: true });
}
