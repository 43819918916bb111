import { handle } from '$lib/server/http/guards';
import { setMaintenanceCookie } from '$lib/server/http/maintenance-access';
import { instance } from '$lib/server/instance';
import { OnboardingRestoreService } from '$lib/server/services/onboarding-restore.service';

/** Welcome page → "Restore from backup": only while the instance has no admin. */
export const POST = ({ cookies, url }) =>
  handle(async () => {
    const app = instance();
    const token = await new OnboardingRestoreService(app.auth, app.maintenance).start();
    setMaintenanceCookie(cookies, token, url.protocol === 'https:');
    return { maintenanceMode: true };
  }, 201);
