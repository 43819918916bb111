import { eventStreamResponse } from '$lib/server/http/event-stream';
import { requireAdmin } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

/** Queue statuses as Server-Sent Events: the current statuses, then each change. */
export const GET = async ({ locals, request }) => {
  requireAdmin(locals);
  return eventStreamResponse({
    signal: request.signal,
    heartbeatMs: 15_000,
    open: (sink) => instance().jobs.subscribe((statuses) => sink.send(statuses)),
  });
};
