import { handle, jsonBody, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** "Send test": {"channel"?: "email"|"webhook", "notifications"?: the form's unsaved settings}; answers per channel what worked. */
export const POST = async (event) => {
  requireAdmin(event.locals);
  const body = await jsonBody(event, { optional: true });
  return handle(() => instance().notifications.test(body));
};
