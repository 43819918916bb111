import { error } from '@sveltejs/kit';

export const load = ({ locals }) => {
  if (!locals.user?.isAdmin) error(403, 'Administration is for administrators only');
};
