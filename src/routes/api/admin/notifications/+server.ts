import { handle, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** The last alert delivery per channel (a failed one is shown in the app) and the recent ones. */
export const GET = async ({ locals }) => {
  requireAdmin(locals);
  return handle(() => instance().notifications.status());
};
