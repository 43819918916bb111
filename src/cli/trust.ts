import { parseArgs } from 'node:util';
import { formatDuration } from '../lib/shared/format';
import { EXIT, UsageError, withApp } from './app';

export const VERIFY_HELP = `Usage: npm run cli -- verify <file> | --all

Verifies backups in UPLOAD_LOCATION/backups: the file's SHA-256 and size match its
manifest (<file>.manifest.json, written with the backup; made now for a file that
has none), the whole gzip stream decompresses, and the dump ends with pg_dump's
"dump complete" line. Exit code 1 when a backup is corrupted.

Manual equivalent:  gzip -t <file> && sha256sum <file>   (compare with the manifest)
`;

export const DRILL_HELP = `Usage: npm run cli -- drill <file>

Test-restores a backup without touching the instance: it is loaded into a scratch
database beside the instance's (the restore's own filter, restricted psql and
unprivileged role), its rows are compared with the manifest, this version's
migrations and the health check run on it, and it is dropped. Exit code 1 when
the drill fails. Refused while a backup or restore runs.
`;

export async function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' }, all: { type: 'boolean' } }, allowPositionals: true, strict: true });
  if (values.help) {
    console.log(VERIFY_HELP);
    return EXIT.ok;
  }
  if (!values.all && positionals.length !== 1) throw new UsageError(`Give one backup file name, or --all.\n\n${VERIFY_HELP}`);
  return withApp(async (app) => {
    const names = values.all ? (await app.backups.listBackups()).map((file) => file.filename) : positionals;
    let corrupted = 0;
    for (const name of names) {
      const result = await app.verification.verify(name);
      if (result.status === 'verified') console.log(`verified   ${name}  (SHA-256 ${result.sha256})`);
      else {
        corrupted++;
        console.log(`CORRUPTED  ${name}: ${result.error}`);
      }
    }
    if (!names.length) console.log(`No backups in ${app.backups.backupsFolder}`);
    return corrupted ? EXIT.failed : EXIT.ok;
  }, { skipMigrations: true });
}

export async function drillCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  if (values.help) {
    console.log(DRILL_HELP);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(`Give one backup file name.\n\n${DRILL_HELP}`);
  return withApp(async (app) => {
    console.log(`Test-restoring ${positionals[0]} into the scratch database "${app.drills.scratchDatabase}"...`);
    const { done } = await app.drills.start(positionals[0]);
    const drill = await done;
    if (drill.status === 'passed') {
      console.log(`Restore drill passed in ${formatDuration(drill.durationMs ?? 0)}: the backup restores, migrates and passes the health check.`);
      return EXIT.ok;
    }
    console.error(`Restore drill FAILED: ${drill.error}`);
    for (const line of drill.log ?? []) console.error(`  ${line}`);
    return EXIT.failed;
  });
}
