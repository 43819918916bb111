import { error } from '@sveltejs/kit';
import { handle, jsonBody, requireAdmin } from '$lib/server/http/guards';
import { credentialsOf, setMaintenanceCookie } from '$lib/server/http/access';
import { instance } from '$lib/server/instance';

/**
 * {action: "start"} enters maintenance mode (201); {action: "end"} leaves it after the
 * migrations (200); {action: "restore_database", restoreBackupFilename} checks the backup,
 * enters maintenance mode and starts the restore in the background (201). Each answers the status.
 */
export const POST = async (event) => {
  requireAdmin(event.locals);
  const body = await jsonBody(event);
  const app = instance();
  const by = event.locals.user?.email ?? 'the maintenance administrator';
  const token = credentialsOf(event).maintenanceToken ?? undefined;
  const secure = event.url.protocol === 'https:';
  switch (body.action) {
    case 'start':
      return handle(async () => {
        if (!app.maintenance.validateToken(token)) setMaintenanceCookie(event.cookies, await app.maintenance.start('start', by), secure);
        return app.maintenance.status;
      }, 201);
    case 'end':
      return handle(() => app.restore.endMaintenance(by));
    case 'restore_database':
      return handle(async () => {
        const started = await app.restore.startRestore(body.restoreBackupFilename, { by, token });
        if (started.token) setMaintenanceCookie(event.cookies, started.token, secure);
        return started.status;
      }, 201);
    default:
      error(400, 'action must be "start", "end" or "restore_database"');
  }
};
