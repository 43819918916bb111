import { error } from '@sveltejs/kit';
import { Readable } from 'node:stream';
import { requireUser } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

export const GET = async ({ locals, params }) => {
  const user = requireUser(locals);
  const file = await instance().assetService.thumbnailFile(params.id, user.id);
  if (!file) error(404, 'Thumbnail not found');
  const stream = Readable.toWeb(file.stream) as ReadableStream;
  return new Response(stream, { headers: { 'content-type': 'image/jpeg', 'cache-control': 'private, max-age=86400' } });
};
