import { clearSessionCookie, credentialsOf } from '$lib/server/http/access';
import { handle } from '$lib/server/http/guards';
import { instance } from '$lib/server/instance';

export const POST = async (event) =>
  handle(async () => {
    const { sessionToken } = credentialsOf(event);
    if (sessionToken) await instance().auth.logout(sessionToken);
    clearSessionCookie(event.cookies);
    return { successful: true, redirectUri: '/auth/login' };
  });
