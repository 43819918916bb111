import { canSeeMaintenanceDetails } from '$lib/server/http/maintenance-access';
import { instance } from '$lib/server/instance';
import { APP_VERSION } from '$lib/server/version';

export const load = ({ locals, cookies }) => {
  const app = instance();
  return {
    // The browser that started maintenance (or an admin) sees the log and the error; others only progress.
    status: app.maintenance.publicStatus(canSeeMaintenanceDetails(locals, cookies, app.maintenance)),
    // Who may act here: the maintenance admin, or an admin session while no restore runs.
    maintenanceAdmin: locals.maintenanceAdmin || Boolean(locals.user?.isAdmin),
    appVersion: APP_VERSION,
    uploadMaxBytes: app.config.uploadMaxBytes,
  };
};
