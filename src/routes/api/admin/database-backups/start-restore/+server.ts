import { handle, jsonBody } from '$lib/server/http/guards';
import { setMaintenanceCookie } from '$lib/server/http/access';
import { instance } from '$lib/server/instance';

/**
 * Welcome page → "Restore from backup": only while the instance has no admin. When its
 * backups folder already holds backups, the body must carry {"setupCode": "…"} (401 without, 403 wrong).
 */
export const POST = async (event) => {
  const body = await jsonBody(event, { optional: true });
  return handle(async () => {
    const token = await instance().firstRun.startRestore(body.setupCode);
    setMaintenanceCookie(event.cookies, token, event.url.protocol === 'https:');
    return { maintenanceMode: true };
  }, 201);
};
