import { parseArgs } from 'node:util';
import { BACKUP_DATABASE } from '../lib/server/services/job.service';
import { EXIT, formatBytes, withApp } from './app';

export const BACKUP_HELP = `Usage: npm run cli -- backup

Makes a database backup now, as "Create Database Backup" on the Job Queues page does:
pg_dump --clean --if-exists of the instance database, gzip-compressed into
UPLOAD_LOCATION/backups/immich-db-backup-<time>-v<version>-pg<postgres>.sql.gz,
then retention (keep the newest "keepLastAmount" routine backups, from Settings).
Refused (exit 1) while another backup or a restore runs, or in maintenance mode.

Manual equivalent:  pg_dump --clean --if-exists --dbname=immich | gzip > dump.sql.gz
`;

export async function backupCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    console.log(BACKUP_HELP);
    return EXIT.ok;
  }
  return withApp(async (app) => {
    const job = await app.jobs.create(BACKUP_DATABASE);
    let lastPrinted = 0;
    const unsubscribe = await app.jobs.subscribe((statuses) => {
      const bytes = statuses.find((status) => status.name === BACKUP_DATABASE)?.progressBytes;
      if (bytes && Date.now() - lastPrinted > 2000) {
        lastPrinted = Date.now();
        console.log(`  ${formatBytes(bytes)} written`);
      }
    });
    console.log('Backing up the database...');
    const result = await job.done.finally(unsubscribe);
    if (result.result !== 'success') {
      console.error(`Backup failed: ${result.error}`);
      return EXIT.failed;
    }
    const file = (await app.backups.listBackups()).find((backup) => backup.filename === result.filename);
    console.log(`Backup ${result.filename} written (${formatBytes(file?.filesize ?? 0)} in ${(result.durationMs / 1000).toFixed(1)} s) to ${app.backups.backupsFolder}`);
    // Verification and then the off-site copy run in the background in the server; here they are awaited, or shutdown would cancel them.
    await app.backgroundIdle();
    const verification = (await app.backups.listBackups()).find((backup) => backup.filename === result.filename)?.verification;
    if (verification?.status === 'verified') console.log('Verified: read back, its SHA-256 matches the manifest.');
    else if (verification?.status === 'corrupted') console.error(`Verification FAILED: ${verification.error}`);
    const offsite = (await app.offsite.listBackups()).find((backup) => backup.filename === result.filename)?.offsite;
    if (offsite?.status === 'copied') console.log('Copied off-site.');
    else if (offsite?.status === 'failed') console.error(`The off-site copy failed: ${offsite.error}`);
    return EXIT.ok;
  });
}
