import { parseArgs } from 'node:util';
import { EXIT, UsageError, withApp } from './app';

export const MAINTENANCE_HELP = `Usage: npm run cli -- maintenance end

Ends maintenance mode (after a failed or interrupted restore, for example), as the
"End maintenance mode" button does: refused while a restore or backup runs, and
only once this version's migrations apply to the database. A running web server
follows the change within a second.
`;

export async function maintenanceCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
  if (values.help) {
    console.log(MAINTENANCE_HELP);
    return EXIT.ok;
  }
  if (positionals.length !== 1 || positionals[0] !== 'end') throw new UsageError(`Expected "maintenance end".\n\n${MAINTENANCE_HELP}`);
  return withApp(async (app) => {
    if (!app.maintenance.isActive()) {
      console.log('Maintenance mode is not on.');
      return EXIT.ok;
    }
    const before = app.maintenance.status;
    if (before.error) console.log(`Last error: ${before.error}`);
    await app.restore.endMaintenance('the command line');
    console.log('Maintenance mode ended.');
    return EXIT.ok;
  }, { skipMigrations: true });
}
