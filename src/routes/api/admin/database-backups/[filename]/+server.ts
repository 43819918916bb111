import { Readable } from 'node:stream';
import { handle, requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** Streams the file (never buffered); the name is checked before any path is built: 400, or 404 when missing. */
export const GET = async ({ locals, params }) => {
  requireAdmin(locals);
  return handle(async () => {
    const { filename, size, stream } = await instance().backups.openBackup(params.filename);
    return new Response(Readable.toWeb(stream) as ReadableStream, {
      headers: {
        'content-type': filename.endsWith('.gz') ? 'application/gzip' : 'application/sql',
        'content-length': String(size),
        'content-disposition': `attachment; filename="${filename}"`,
      },
    });
  });
};
