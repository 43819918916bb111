import type { Database } from '../db/database';
import { schemaState } from '../db/migrator';
import { APP_VERSION } from '../version';
import type { RestoreLog } from './restore-log';

/** Step 7: the database answers, its schema is exactly this app's, and someone can sign in as admin. */
export async function checkHealth(db: Database, hasAdmin: () => Promise<boolean>, log: RestoreLog): Promise<void> {
  await log.task('health', 'Checking the restored database');
  const state = await db.withClient((client) => schemaState(client));
  log.progress(0.5);
  if (state.unknown.length) throw new Error(`the restored schema has migrations this version does not know (${state.unknown.join(', ')})`);
  if (state.pending.length) throw new Error(`the restored schema is not at this version: ${state.pending.map((m) => m.name).join(', ')} did not run`);
  if (!(await hasAdmin())) throw new Error('the backup has no admin user, so nobody could sign in to the restored instance');
  log.progress(1);
  await log.info(`Health check passed: the database answers, the schema is at ${state.version ?? 'none'} (Lifeboat ${APP_VERSION}), an admin exists`);
}
