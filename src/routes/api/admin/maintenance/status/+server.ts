import { json } from '@sveltejs/kit';
import { canSeeMaintenanceDetails } from '$lib/server/http/access';
import { instance } from '$lib/server/instance';

/** Anyone may see the progress (the /maintenance page is public); only admins see the error and the log. */
export const GET = (event) => {
  const { maintenance } = instance();
  const privileged = canSeeMaintenanceDetails(event, maintenance);
  return json(maintenance.publicStatus(privileged), { headers: { 'cache-control': 'no-store' } });
};
