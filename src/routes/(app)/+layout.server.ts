import { redirect } from '@sveltejs/kit';

export const load = ({ locals, url }) => {
  if (!locals.user) redirect(307, `/auth/login?continue=${encodeURIComponent(url.pathname)}`);
  return { user: locals.user };
};
