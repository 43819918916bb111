import { SESSION_COOKIE } from '$lib/server/services/auth.service';
import { handle } from '$lib/server/http/guards';
import { clearSessionCookie } from '$lib/server/http/session-cookie';
import { instance } from '$lib/server/instance';

export const POST = async ({ cookies, request }) =>
  handle(async () => {
    const token = request.headers.get('authorization')?.match(/^Bearer\s+(.+)$/i)?.[1] ?? cookies.get(SESSION_COOKIE);
    if (token) await instance().auth.logout(token);
    clearSessionCookie(cookies);
    return { successful: true, redirectUri: '/auth/login' };
  });
