import { handle, jsonBody, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** Brings an off-site-only backup back into the backups folder, SHA-256 checked: {"filename": "…"}. */
export const POST = async (event) => {
  requireAdmin(event.locals);
  const body = await jsonBody(event);
  return handle(() => instance().offsite.fetch(body.filename), 201);
};
