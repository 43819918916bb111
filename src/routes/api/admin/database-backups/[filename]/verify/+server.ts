import { handle, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** Verifies the backup now (SHA-256 against its manifest, the whole gzip, the end line) and answers the result: 400 bad name, 404 missing. */
export const POST = async ({ locals, params }) => {
  requireAdmin(locals);
  return handle(() => instance().verification.verify(params.filename));
};
