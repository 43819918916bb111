// Child process for restore-crash.test.ts: feeds a dump (a FIFO the test writes into) to psql
// the way an in-place restore does, until the test kills this process.
import { createRestoreFilter } from '../src/lib/server/dump-filter';
import { prelude, RestoreRepository } from '../src/lib/server/repositories/restore.repository';
import { ALLOWED_EXTENSIONS } from '../src/lib/server/restore/extensions';

const [psql, host, port, user, database, path] = process.argv.slice(2);
const connection = { host, port: Number(port), user, password: undefined, database };
await new RestoreRepository().loadDump({
  psql,
  connection,
  path,
  compressed: false,
  prelude: prelude('in-place-superuser'),
  filter: createRestoreFilter({ databaseName: database, existingRoles: new Set([user]), allowedExtensions: ALLOWED_EXTENSIONS }),
});
console.log('loadDump returned');
