import { handle, jsonBody, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** "Test connection": the body may carry the form's unsaved off-site settings (an empty secret means the stored one). */
export const POST = async (event) => {
  requireAdmin(event.locals);
  const body = await jsonBody(event, { optional: true });
  return handle(() => instance().offsite.test(Object.keys(body).length ? body : undefined));
};
