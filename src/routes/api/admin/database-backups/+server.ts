import { handle, jsonBody, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

export const GET = async ({ locals }) => {
  requireAdmin(locals);
  return handle(async () => ({ backups: await instance().offsite.listBackups() }));
};

/** All or nothing: a bad name is 400, a missing file 404 naming every missing one, and then nothing is deleted. */
export const DELETE = async (event) => {
  requireAdmin(event.locals);
  const body = await jsonBody(event);
  return handle(() => instance().backups.deleteBackups(body.backups));
};
