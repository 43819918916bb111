import { handle, jsonBody, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

export const GET = async ({ locals }) => {
  requireAdmin(locals);
  return handle(() => instance().systemConfig.getPublic());
};

/** Validated as a whole: an invalid value is a 400 with the reason, and nothing is saved. */
export const PUT = async (event) => {
  requireAdmin(event.locals);
  const body = await jsonBody(event);
  return handle(() => instance().systemConfig.updatePublic(body));
};
