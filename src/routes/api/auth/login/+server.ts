import { handle, jsonBody } from '$lib/server/http/guards';
import { setSessionCookie } from '$lib/server/http/access';
import { instance } from '$lib/server/instance';

export const POST = async (event) => {
  const body = await jsonBody(event);
  return handle(async () => {
    const { accessToken, user, expiresAt } = await instance().auth.login({ email: body.email, password: body.password });
    setSessionCookie(event.cookies, accessToken, expiresAt, event.url.protocol === 'https:');
    return { accessToken, userId: user.id, userEmail: user.email, name: user.name, isAdmin: user.isAdmin };
  }, 201);
};
