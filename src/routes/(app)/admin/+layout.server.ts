import { error } from '@sveltejs/kit';
import { instance } from '$lib/server/instance';

export const load = ({ locals }) => {
  if (!locals.user?.isAdmin) error(403, 'Administration is for administrators only');
  // Why the app could not run as an unprivileged database role, when it could not (see README, "Security model").
  return { databaseWarning: instance().db.access.warning };
};
