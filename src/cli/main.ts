// `npm run cli -- <command>`: backups and restores from the command line, with the same
// services as the web server and no web server needed.
import { backupCommand } from './backup';
import { EXIT, UsageError, describeError } from './app';
import { listCommand } from './list';
import { maintenanceCommand } from './maintenance';
import { restoreCommand } from './restore';
import { drillCommand, verifyCommand } from './trust';

const HELP = `Usage: npm run cli -- <command> [options]

Commands:
  backup                   make a database backup now (then apply retention)
  list                     list the backups in UPLOAD_LOCATION/backups
  restore <file> [--yes]   restore a backup: restore point, migrations, health check, rollback
  verify <file> | --all    check backups against their manifests (SHA-256, whole gzip, end line)
  drill <file>             test-restore a backup into a scratch database, then drop it
  maintenance end          leave maintenance mode

"npm run cli -- <command> --help" explains each one. The environment is the web
server's (UPLOAD_LOCATION, DB_DATA_LOCATION or DB_URL/DB_HOSTNAME..., see README).
Exit code: 0 on success, 1 when the operation failed, 2 for a wrong command line.
`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  backup: backupCommand,
  list: listCommand,
  restore: restoreCommand,
  maintenance: maintenanceCommand,
  verify: verifyCommand,
  drill: drillCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(HELP);
    return name ? EXIT.ok : EXIT.usage;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`Unknown command "${name}".\n\n${HELP}`);
  return command(rest);
}

// Output piped into a command that exits early (| head) must not kill a restore half way.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    const usage = error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    console.error(`lifeboat: ${describeError(error)}`);
    process.exit(usage ? EXIT.usage : EXIT.failed);
  },
);
