import { requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

const HEARTBEAT_MS = 15_000;

/**
 * Queue statuses as Server-Sent Events: a comment at once (adapter-node sends headers with
 * the first chunk), the current statuses, then each change. The subscription ends with the
 * connection.
 */
export const GET = async ({ locals, request }) => {
  requireAdmin(locals);
  const encoder = new TextEncoder();
  let cleanup = () => {};
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      const write = (text: string) => {
        try {
          controller.enqueue(encoder.encode(text));
        } catch {
          cleanup();
        }
      };
      write(': connected\n\n');
      const unsubscribe = await instance().jobs.subscribe((statuses) => write(`data: ${JSON.stringify(statuses)}\n\n`));
      const heartbeat = setInterval(() => write(': heartbeat\n\n'), HEARTBEAT_MS);
      cleanup = () => {
        clearInterval(heartbeat);
        unsubscribe();
        request.signal.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        cleanup();
        try {
          controller.close();
        } catch {
          // already closed
        }
      };
      if (request.signal.aborted) onAbort();
      else request.signal.addEventListener('abort', onAbort);
    },
    cancel() {
      cleanup();
    },
  });
  return new Response(stream, {
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' },
  });
};
