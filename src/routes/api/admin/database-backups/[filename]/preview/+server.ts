import { handle, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** What the backup holds beside the instance (RestorePreview); the name is checked first: 400, or 404 when missing. */
export const GET = async ({ locals, params }) => {
  requireAdmin(locals);
  return handle(() => instance().preview.preview(params.filename));
};
