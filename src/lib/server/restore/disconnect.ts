import type { Database } from '../db/database';
import type { RestoreRepository } from '../repositories/restore.repository';
import type { RestoreLog } from './restore-log';

/**
 * Step 4: close the app's pool and end every other session on the database (including a
 * running web server's pool when the command line restores), so nothing holds a lock the
 * schema reset needs, and nothing reads half a restore.
 */
export async function disconnect(db: Database, repository: RestoreRepository, log: RestoreLog): Promise<void> {
  await db.closePool();
  try {
    const ended = await repository.terminateConnections(db.connection, db.connection.database);
    await log.info(ended ? `Closed the app's connections and ended ${ended} other session(s)` : "Closed the app's connections");
  } catch (error) {
    // A restricted role may not end others' sessions: the restore then waits for their locks (up to a minute).
    await log.info(`Could not end other sessions on the database (${(error as Error).message}); going on`);
  }
}
