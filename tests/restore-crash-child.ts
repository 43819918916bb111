// Child process for restore-crash.test.ts: feeds a dump (a FIFO the test writes into) to psql
// the way a restore does, until the test kills this process.
import { createRestoreFilter } from '../src/lib/server/backup/restore-filter';
import { RestoreRepository } from '../src/lib/server/repositories/restore.repository';

const [psql, host, port, user, database, path] = process.argv.slice(2);
const connection = { host, port: Number(port), user, password: undefined, database };
await new RestoreRepository().loadDump({
  psql,
  connection,
  path,
  compressed: false,
  filter: createRestoreFilter({ connectingRole: user, databaseName: database }),
});
console.log('loadDump returned');
