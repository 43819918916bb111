import { redirect } from '@sveltejs/kit';

export const load = ({ locals }) => {
  redirect(307, locals.user ? '/photos' : '/auth/login');
};
