import { adminRefusal, canSeeMaintenanceDetails } from '$lib/server/http/access';
import { instance } from '$lib/server/instance';
import { APP_VERSION } from '$lib/server/version';

export const load = async (event) => {
  const app = instance();
  // Who may act here: the maintenance admin, or an admin session while no restore runs.
  const maintenanceAdmin = !adminRefusal(event.locals);
  // The first-run wizard of a reinstall, opened in another browser: its owner joins with the setup code.
  const joinable = app.maintenance.isActive() && !app.maintenance.isRunning() && !maintenanceAdmin;
  return {
    // The browser that started maintenance (or an admin) sees the log and the error; others only progress.
    status: app.maintenance.publicStatus(canSeeMaintenanceDetails(event, app.maintenance)),
    maintenanceAdmin,
    setupCode: joinable ? await app.firstRun.prompt().catch(() => null) : null,
    appVersion: APP_VERSION,
    uploadMaxBytes: app.config.uploadMaxBytes,
  };
};
