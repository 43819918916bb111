import { canSeeMaintenanceDetails } from '$lib/server/http/access';
import { eventStreamResponse } from '$lib/server/http/event-stream';
import { instance } from '$lib/server/instance';
import { RUNNING_TASKS } from '$lib/server/services/maintenance.service';
import type { MaintenanceStatus } from '$lib/shared/types';

/**
 * Server-Sent Events: the current status first (with the whole log, so a late subscriber
 * misses nothing), then every change, and at least one event a second while a step runs.
 */
export const GET = (event) => {
  const { maintenance } = instance();
  const privileged = canSeeMaintenanceDetails(event, maintenance);
  const view = (status: MaintenanceStatus) => maintenance.publicStatus(privileged, status);
  return eventStreamResponse({
    signal: event.request.signal,
    heartbeatMs: 1000,
    open(sink) {
      sink.send(view(maintenance.status));
      return maintenance.subscribe((status) => sink.send(view(status)));
    },
    // The page's estimate of the time left moves every second while a step runs.
    heartbeat(sink) {
      if (Date.now() - sink.lastWrite < 900) return;
      const status = maintenance.status;
      if (status.active && RUNNING_TASKS.includes(status.task)) sink.send(view(status));
      else sink.comment('ping');
    },
  });
};
