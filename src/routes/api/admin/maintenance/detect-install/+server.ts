import { handle, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** The first-run wizard's integrity check: per storage folder, readable, writable, file count and a hint. */
export const GET = ({ locals }) => {
  requireAdmin(locals);
  return handle(async () => ({ storage: await instance().storage.checkIntegrity() }));
};
