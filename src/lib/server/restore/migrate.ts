import { SchemaTooNewError } from '../db/migrator';
import { APP_VERSION } from '../version';
import type { RestoreLog } from './restore-log';

export class NewerBackupError extends Error {
  constructor(cause: SchemaTooNewError) {
    super(
      `the backup was made by a newer version of Lifeboat than this one (${APP_VERSION}): its schema has migrations this version does not know (${cause.unknown.join(', ')}). ` +
        `Upgrade Lifeboat to the version that made it, or restore a backup made by ${APP_VERSION} or older`,
      { cause },
    );
    this.name = 'NewerBackupError';
  }
}

/** Step 6: an older backup is migrated forward; a newer one is refused (and then rolled back). */
export async function migrateRestored(migrate: () => Promise<string[]>, log: RestoreLog): Promise<void> {
  await log.task('migrations', 'Running database migrations');
  try {
    const ran = await migrate();
    await log.info(ran.length ? `Applied ${ran.length} migration(s): ${ran.join(', ')}` : 'The schema is already at this version: no migration needed');
  } catch (error) {
    if (error instanceof SchemaTooNewError) throw new NewerBackupError(error);
    throw error;
  }
}
