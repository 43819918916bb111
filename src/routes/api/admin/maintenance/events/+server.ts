import { canSeeMaintenanceDetails } from '$lib/server/http/access';
import { instance } from '$lib/server/instance';
import { RUNNING_TASKS } from '$lib/server/services/maintenance.service';
import type { MaintenanceStatus } from '$lib/shared/types';

const HEARTBEAT_MS = 1000;

/**
 * Server-Sent Events: the current status first (with the whole log, so a late subscriber
 * misses nothing), then every change, and at least one event a second while a step runs.
 */
export const GET = (event) => {
  const { maintenance } = instance();
  const privileged = canSeeMaintenanceDetails(event, maintenance);
  const encoder = new TextEncoder();
  let stop = () => {};
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      let lastSent = 0;
      const write = (text: string) => {
        try {
          controller.enqueue(encoder.encode(text));
        } catch {
          stop();
        }
      };
      const send = (status: MaintenanceStatus) => {
        lastSent = Date.now();
        write(`data: ${JSON.stringify(maintenance.publicStatus(privileged, status))}\n\n`);
      };
      // Headers wait for the first chunk through adapter-node: write one at once.
      write(': connected\n\n');
      send(maintenance.status);
      const unsubscribe = maintenance.subscribe(send);
      const heartbeat = setInterval(() => {
        if (Date.now() - lastSent < HEARTBEAT_MS - 100) return;
        const status = maintenance.status;
        if (status.active && RUNNING_TASKS.includes(status.task)) send(status);
        else write(': ping\n\n');
      }, HEARTBEAT_MS);
      stop = () => {
        unsubscribe();
        clearInterval(heartbeat);
      };
    },
    // The client went away: adapter-node cancels the stream.
    cancel() {
      stop();
    },
  });
  return new Response(stream, {
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' },
  });
};
