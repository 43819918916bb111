import { json } from '@sveltejs/kit';
import { handle, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** The last files-vs-database report: `{report: ConsistencyReport | null}` (null until one has run). */
export const GET = async ({ locals }) => {
  requireAdmin(locals);
  return json({ report: await instance().consistency.last() });
};

/** Runs the comparison again and answers `{report}`. Read-only: no file is changed. */
export const POST = async ({ locals }) => {
  requireAdmin(locals);
  return handle(async () => ({ report: await instance().consistency.run('manual') }));
};
