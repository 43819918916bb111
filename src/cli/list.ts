import { parseArgs } from 'node:util';
import { APP_VERSION } from '../lib/server/version';
import { compatibilityOf } from '../lib/shared/version';
import { EXIT, formatBytes, withApp } from './app';

export const LIST_HELP = `Usage: npm run cli -- list

Lists the backups in UPLOAD_LOCATION/backups, newest first: date (UTC), kind
(routine, restore-point, uploaded, other), the Lifeboat version that made it and
whether it matches this one (${APP_VERSION}), size, verification (see verify), the
last restore drill (see drill) and file name.
`;

export async function listCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    console.log(LIST_HELP);
    return EXIT.ok;
  }
  return withApp(async (app) => {
    const backups = await app.backups.listBackups();
    if (!backups.length) {
      console.log(`No backups in ${app.backups.backupsFolder}`);
      return EXIT.ok;
    }
    const rows = backups.map((backup) => {
      const compatibility = compatibilityOf(backup.version, APP_VERSION);
      const version = backup.version ? `${backup.version} (${compatibility === 'same' ? 'this version' : compatibility})` : 'unknown';
      const checked = backup.verification?.status === 'verified' ? 'verified' : backup.verification?.status === 'corrupted' ? 'CORRUPTED' : 'not verified';
      const drill = backup.drill?.status === 'passed' ? 'passed' : backup.drill?.status === 'failed' ? 'FAILED' : backup.drill?.status === 'running' ? 'running' : '-';
      return [backup.createdAt.replace('T', ' ').slice(0, 19), backup.kind, version, formatBytes(backup.filesize), checked, drill, backup.filename];
    });
    const header = ['CREATED (UTC)', 'KIND', 'VERSION', 'SIZE', 'CHECK', 'DRILL', 'FILE'];
    const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)));
    for (const row of [header, ...rows]) console.log(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  '));
    return EXIT.ok;
  }, { skipMigrations: true });
}
