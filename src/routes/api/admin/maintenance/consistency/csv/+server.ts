import { Readable } from 'node:stream';
import { error } from '@sveltejs/kit';
import { requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** Every missing and untracked path of the last report, as CSV (status,path); 404 before the first report. */
export const GET = async ({ locals }) => {
  requireAdmin(locals);
  const stream = await instance().consistency.csv();
  if (!stream) error(404, 'No files report yet: run one first');
  return new Response(Readable.toWeb(stream) as ReadableStream, {
    headers: { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': 'attachment; filename="lifeboat-files-report.csv"' },
  });
};
