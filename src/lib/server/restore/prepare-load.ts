import type { Config } from '../config';
import type { Database } from '../db/database';
import type { DatabaseProperties } from '../db/roles';
import { prelude, type DumpExtension, type RestoreRepository, type StagingFacts } from '../repositories/restore.repository';
import { DumpLogin } from './dump-login';
import type { LoadTarget } from './load-dump';
import type { RestoreLog } from './restore-log';
import { StagedDatabase, stagingDecision } from './staged-database';
import type { ValidatedDump } from './validate-backup';

export interface PreparedLoad {
  staged: StagedDatabase | null;
  /** The live database's properties before the load (with an administrator): what it keeps, staged or in place. */
  properties: DatabaseProperties | null;
  facts: StagingFacts | null;
  login: DumpLogin;
  target: LoadTarget;
}

/**
 * Step 5a: where the dump goes (a new database, or in place), who runs it (DumpLogin), and what
 * the app makes first as administrator: the database itself and the extensions the dump needs.
 * On failure nothing it made is left behind.
 */
export async function prepareLoad(
  deps: { config: Config; db: Database; repository: RestoreRepository },
  dump: ValidatedDump,
  extensions: DumpExtension[],
  log: RestoreLog,
  decision?: { facts: StagingFacts | null; reason: string | null },
): Promise<PreparedLoad> {
  const { db, repository } = deps;
  const admin = db.admin ?? db.connection;
  const { facts, reason } = decision ?? (await stagingDecision(repository, admin, dump));
  const properties = db.admin ? await repository.databaseProperties(db.admin, db.connection.database) : null;
  let staged: StagedDatabase | null = null;
  let login: DumpLogin | null = null;
  if (reason) await log.info(`Restoring in place, in one transaction (${reason})`);
  else {
    login = await DumpLogin.forRestore(deps, true, log);
    const candidate = new StagedDatabase(repository, admin);
    try {
      await candidate.create(facts!, login.temporary ? login.role : facts!.owner);
      staged = candidate;
    } catch (error) {
      await login.release();
      login = null;
      await log.info(`Restoring in place, in one transaction (a new database could not be created: ${(error as Error).message})`);
    }
  }
  login ??= await DumpLogin.forRestore(deps, false, log);
  const database = staged?.staged ?? db.connection.database;
  try {
    if (staged) {
      login = await login.verify(staged.staged, log);
      await log.info(`Restoring into a new database "${staged.staged}"; "${db.connection.database}" stays untouched until the restore is complete`);
    }
    if (db.admin) {
      // Made by the administrator, so the dump needs no right to make them; in place their schemas stay the administrator's, out of DROP OWNED's reach.
      await repository.createExtensions(db.admin, database, extensions, staged ? login.role : db.admin.user);
      if (staged && facts!.serverMajor < 15) await repository.givePublicSchema(db.admin, database, login.role);
      if (extensions.length) await log.info(`Extensions made for the dump: ${extensions.map((extension) => extension.name).join(', ')}`);
    }
  } catch (error) {
    await staged?.discard().catch(() => undefined);
    await login.release();
    throw error;
  }
  const kind = staged ? 'staged' : login.superuser ? 'in-place-superuser' : 'in-place';
  return { staged, facts, properties, login, target: { login: login.connection, database, prelude: prelude(kind, extensions), extensions } };
}
