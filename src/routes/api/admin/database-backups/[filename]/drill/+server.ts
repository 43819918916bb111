import { handle, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/**
 * Starts a restore drill of the backup (202): the result appears in the list's `drill` and on
 * Job Queues. 400 bad name, 404 missing, 409 while a backup, restore or drill runs, 503 in maintenance mode.
 */
export const POST = async ({ locals, params }) => {
  requireAdmin(locals);
  return handle(async () => {
    const { filename, startedAt } = await instance().drills.start(params.filename);
    return { filename, startedAt, status: 'running' };
  }, 202);
};
