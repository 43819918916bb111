import { json } from '@sveltejs/kit';
import { canSeeMaintenanceDetails } from '$lib/server/http/maintenance-access';
import { instance } from '$lib/server/instance';

/** Anyone may see the progress (the /maintenance page is public); only admins see the error and the log. */
export const GET = ({ locals, cookies }) => {
  const { maintenance } = instance();
  const privileged = canSeeMaintenanceDetails(locals, cookies, maintenance);
  return json(maintenance.publicStatus(privileged), { headers: { 'cache-control': 'no-store' } });
};
